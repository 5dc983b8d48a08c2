"""What a failed ACME exchange tells the user: the CA's own words, and what to check (RFC 8555 problem types)."""

from __future__ import annotations

import requests
from acme import challenges, messages
from acme import errors as acme_errors

from shipyard.errors import PlatformError

CHALLENGE_PATH = "/.well-known/acme-challenge/"


def challenge_url(domain: str, token: str) -> str:
    """Where the CA fetches an HTTP-01 token (as it says it in its errors)."""
    return f"http://{domain}{CHALLENGE_PATH}{token}"


def _domain(authz: messages.AuthorizationResource) -> str:
    return str(authz.body.identifier.value)


_ANOTHER_HOST_ANSWERED = ("What answered for {domain} on port 80 did not serve the challenge: is its DNS pointing "
                          "at this machine (not at an old host or a CDN), and does port 80 reach the edge directly?")
_DNS_AND_PORT_80 = ("Is {domain}'s DNS (its A/AAAA records) pointing at this machine, and is port 80 open to the "
                    "internet?")
# What the user can do about a failed validation, by the problem's type (RFC 8555 §6.7).
_VALIDATION_HINTS = {
    "dns": "{domain} could not be resolved: does it have an A/AAAA record pointing at this machine?",
    "caa": "{domain}'s CAA DNS records do not allow this CA: add one for it, or remove them.",
    "unauthorized": _ANOTHER_HOST_ANSWERED,
    "incorrectResponse": _ANOTHER_HOST_ANSWERED,
    "rejectedIdentifier": "This CA does not issue certificates for {domain}: is it a public domain name?",
}
# The same for the CA refusing a request (no domain at stake).
_REFUSAL_HINTS = {
    "rateLimited": "The CA's rate limit was reached: wait (the detail says until when) and try again.",
    "rejectedIdentifier": "The CA does not issue certificates for this name: is it a public domain name?",
    "caa": "A domain's CAA DNS records do not allow this CA: add one for it, or remove them.",
    "unsupportedContact": "Give a contact email address the CA accepts, or none.",
    "invalidContact": "Give a contact email address the CA accepts, or none.",
    "externalAccountRequired": "This CA needs an external account binding, which Shipyard does not support: "
                               "use Let's Encrypt.",
    "serverInternal": "The CA failed: try again later.",
}


def validation_failure(domain: str, url: str, code: str | None, detail: str) -> PlatformError:
    """The CA could not prove `domain` by fetching `url`: its own words, and what to check."""
    hint = _VALIDATION_HINTS.get(code or "", _DNS_AND_PORT_80).format(domain=domain)
    return PlatformError(f"The ACME server could not verify {domain} by fetching {url}: {detail}", hint=hint)


def authorization_failure(authz: messages.AuthorizationResource) -> PlatformError:
    domain = _domain(authz)
    for challenge in authz.body.challenges:
        if isinstance(challenge.chall, challenges.HTTP01) and challenge.error is not None:
            error = challenge.error
            return validation_failure(domain, challenge_url(domain, challenge.chall.encode("token")), error.code,
                                      error.detail or error.description or str(error.typ))
    return PlatformError(f"The ACME server did not authorize {domain} (authorization {authz.body.status})",
                         hint=_DNS_AND_PORT_80.format(domain=domain))


def acme_failure(exc: BaseException, directory_url: str, doing: str) -> PlatformError:
    """A failure of the exchange with the CA at `directory_url` while trying to `doing`, for the user."""
    if isinstance(exc, requests.exceptions.SSLError):
        return PlatformError(f"The ACME server {directory_url} is not trusted (while trying to {doing}): {exc}",
                             hint="Check the directory URL and this machine's clock; for a private CA, give its "
                                  "certificate as the CA bundle.")
    if isinstance(exc, (requests.RequestException, OSError)):
        return PlatformError(f"Could not reach the ACME server {directory_url} to {doing}: {exc}",
                             hint="Check the directory URL and that this machine can make HTTPS connections out.")
    if isinstance(exc, acme_errors.IssuanceError):
        exc = exc.error
    if isinstance(exc, messages.Error):
        detail = exc.detail or exc.description or str(exc.typ)
        return PlatformError(f"The ACME server {directory_url} refused to {doing}: {detail}",
                             hint=_REFUSAL_HINTS.get(exc.code or "", "See the detail above; try again later."))
    if isinstance(exc, acme_errors.TimeoutError):
        return PlatformError(f"The ACME server {directory_url} took too long to {doing}",
                             hint="The CA may be slow or down: try again later.")
    return PlatformError(f"The exchange with the ACME server {directory_url} failed while trying to {doing}: {exc}",
                         hint="Try again later; if it persists, check the directory URL.")
