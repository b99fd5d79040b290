"""Which of our numbers a Twilio webhook speaks for, once its signature proves Twilio sent it.

Every webhook names one of our numbers: `To` for what reaches it (a call, a text), `From` for
what it sent (a text's delivery status, a call we placed). The request's
`X-Twilio-Signature` is checked against the URL as Twilio requested it (our public base URL,
not what a proxy forwarded) under that number's own auth token only. The deployment's
`TWILIO_AUTH_TOKEN` stands in only for a number that has no token of its own or is not
registered; it never speaks for a number that has one. A registered number's webhook must
also carry its account's `AccountSid`.

Whatever is refused is answered 403 and logged as `webhook refused` with the path and the
reason (never a token).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from twilio.request_validator import RequestValidator

from stores.phone_numbers import InvalidPhoneNumber, PhoneNumber, normalize_phone_number
from stores.secrets import SecretUnreadable
from voice_server.log import get_logger
from voice_server.services import Services

log = get_logger(__name__)


async def verified_form(
    request: Request, number_field: str
) -> tuple[dict[str, str], PhoneNumber | None]:
    """The webhook's form, and the registered number named in `number_field` for which it was
    verified (None for a number that is not registered, verified with the deployment's token).

    Raises HTTP 403 (see the module docstring) when the signature is missing or does not match
    under that number's token, the token cannot be opened, or the account is not the number's.
    """
    services: Services = request.state.services
    form = await request.form()
    number = None
    with contextlib.suppress(InvalidPhoneNumber):
        number = await services.phone_numbers.find_registered(
            normalize_phone_number(str(form.get(number_field, "")))
        )
    return await verified_form_for(request, number), number


async def verified_form_for(request: Request, number: PhoneNumber | None) -> dict[str, str]:
    """The webhook's form, once verified as Twilio's for `number` (found by the caller: for a
    call we placed, from the scheduled call the URL names); HTTP 403 as `verified_form`."""
    services: Services = request.state.services
    form = await request.form()
    params = {key: str(value) for key, value in form.multi_items()}
    signature = request.headers.get("x-twilio-signature")
    if not signature:
        raise refuse(request, "missing X-Twilio-Signature header")
    token = _signing_token(request, services, number)
    url = public_url(services.settings.base_url, request.url.path, request.url.query)
    if not twilio_signature_valid(url, params, signature, [token]):
        raise refuse(request, f"X-Twilio-Signature does not match this request for {url}")
    if number is not None and params.get("AccountSid") != number.twilioAccountSid:
        raise refuse(
            request, "AccountSid is not the Twilio account of the number", number_id=number.id
        )
    request.state.signature_verified = True  # for what is logged if the database fails later
    return params


def _signing_token(request: Request, services: Services, number: PhoneNumber | None) -> str:
    """The token that must have signed a webhook for `number`: its own, opened for this check
    only; the deployment's if it has none or is not registered. Raises HTTP 403 otherwise."""
    if number is not None and number.twilioAuthToken:
        try:
            return services.phone_numbers.auth_token(number)
        except SecretUnreadable:
            raise refuse(
                request,
                "the number's auth token was sealed under another key: set it again",
                number_id=number.id,
            ) from None
    deployment = services.settings.twilio_auth_token
    if deployment is None:
        raise refuse(
            request,
            "no auth token to check the signature with: the number is not registered or has "
            "no token, and TWILIO_AUTH_TOKEN is not set",
        )
    return deployment.get_secret_value()


def refuse(request: Request, reason: str, **context: str) -> HTTPException:
    """Log why a webhook is refused; the 403 to raise, saying the same."""
    log.warning("webhook refused", path=request.url.path, reason=reason, **context)
    return HTTPException(status_code=403, detail=f"Forbidden: {reason}")


def twilio_signature_valid(
    url: str, params: Mapping[str, str], signature: str, auth_tokens: Iterable[str]
) -> bool:
    """Whether `signature` is Twilio's signature of `url` + `params` under any of the tokens
    (several during an auth-token rotation, or a number's own token and the deployment's)."""
    return any(RequestValidator(token).validate(url, params, signature) for token in auth_tokens)


def public_url(base_url: str, path: str, query: str) -> str:
    """The URL exactly as Twilio requested it: our public base plus the raw path and query."""
    return f"{base_url}{path}" + (f"?{query}" if query else "")
