// The live parts of the dashboard: the log tail (server-sent events) with its filters and pause.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const log = document.getElementById("log");
  if (!log || !log.dataset.stream) return;
  const source = document.getElementById("log-source");
  const text = document.getElementById("log-text");
  const pause = document.getElementById("log-pause");
  const status = document.getElementById("log-status");
  const lines = log.textContent.split("\n").filter((l) => l);
  const held = [];
  let paused = false;
  const MAX = 2000;
  // "2026-11-29T21:40:00.000000+00:00 web.1: text" → "web"; "router: …" → "router"; "shipyard[web.1]" → "shipyard".
  const kind = (line) => { const s = line.split(" ", 2)[1] || ""; return s.replace(/[:\[.].*$/, ""); };
  const shown = (line) => (!source.value || kind(line) === source.value) &&
    (!text.value || line.toLowerCase().includes(text.value.toLowerCase()));
  const render = () => {
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.textContent = lines.filter(shown).join("\n") + "\n";
    if (atBottom) log.scrollTop = log.scrollHeight;
  };
  source.addEventListener("change", render);
  text.addEventListener("input", render);
  pause.addEventListener("click", () => {
    paused = !paused;
    pause.setAttribute("aria-pressed", String(paused));
    pause.textContent = paused ? "Resume" : "Pause";
    if (!paused) { lines.push(...held.splice(0)); lines.splice(0, Math.max(0, lines.length - MAX)); render(); }
  });
  render();
  log.scrollTop = log.scrollHeight;
  const events = new EventSource(log.dataset.stream);
  events.onopen = () => { status.textContent = "live"; };
  events.onerror = () => { status.textContent = "reconnecting…"; };
  events.onmessage = (event) => {
    if (paused) { held.push(event.data); return; }
    lines.push(event.data);
    lines.splice(0, Math.max(0, lines.length - MAX));
    render();
  };
});
