"""`shipyard domains add|remove|list APP [DOMAIN]` and `shipyard ca`."""

from __future__ import annotations

import typer
from rich.markup import escape

from shipyard.cli.context import client, out

domains_cli = typer.Typer(help="Custom domains: an app answers them too, with a certificate each.")


@domains_cli.command("list")
def domains_list(name: str) -> None:
    """The app's custom domains and their certificates (pending, issued, failed and why)."""
    domains = client().request("GET", f"/apps/{name}/domains")
    if not domains:
        out.print(f"{name} has no custom domain. Add one: shipyard domains add {name} shop.example.com")
    for d in domains:
        until = f", until {d['not_after'][:10]}" if d.get("not_after") else ""
        colour = {"issued": "green", "failed": "red"}.get(d["status"], "yellow")
        out.print(f"{d['hostname']}  [{colour}]{d['status']}[/{colour}]{escape(until)}  {escape(d['detail'])}")


@domains_cli.command("add")
def domains_add(name: str, domain: str) -> None:
    """Serve the app at DOMAIN too; its certificate is requested at once."""
    added = client().request("POST", f"/apps/{name}/domains", json={"hostname": domain})
    out.print(f"Added {added['hostname']} to {name}: certificate {added['status']}.")
    out.print(f"Point its DNS at this machine: {added['dns']}.", markup=False)
    out.print(f"Follow the certificate with `shipyard domains list {name}`.", markup=False)


@domains_cli.command("remove")
def domains_remove(name: str, domain: str) -> None:
    """Stop serving the app at DOMAIN; its certificate is removed."""
    client().request("DELETE", f"/apps/{name}/domains/{domain}")
    out.print(f"Removed {domain} from {name}.")


def ca() -> None:
    """The platform's certificate authority: where it is, and how to trust it for HTTPS to its apps."""
    found = client().request("GET", "/ca")
    path = found["path"]
    out.print(f"The platform's CA certificate: {path}\n", markup=False)
    out.print("Trust it to reach apps over HTTPS without warnings (apps at <app>.<base domain>, and custom "
              "domains when no ACME server is set up):", markup=False)
    out.print(f"  curl:            curl --cacert {path} https://todo.localhost:8443/", markup=False)
    out.print(f"  Python:          SSL_CERT_FILE={path} (httpx, requests: REQUESTS_CA_BUNDLE={path})", markup=False)
    out.print(f"  Debian, Ubuntu:  cp {path} /usr/local/share/ca-certificates/shipyard.crt && update-ca-certificates",
              markup=False)
    out.print(f"  Firefox, Chrome: Settings → Certificates → Authorities → Import {path}", markup=False)
