"""What we hand Twilio as text: TwiML answers and the texts we send through its REST API.

XML 1.0 can carry only some characters (https://www.w3.org/TR/xml/#charsets): tab, line feed,
carriage return, and U+0020–U+D7FF, U+E000–U+FFFD, U+10000–U+10FFFF. Anything else (C0
controls such as NUL or U+000B, lone surrogates, U+FFFE/U+FFFF) makes a document that is not
XML, whatever the escaping, and Twilio cannot read it. Such characters are dropped.
"""

from __future__ import annotations

import re

from starlette.responses import Response
from twilio.twiml import TwiML

_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    """`text` without the characters XML 1.0 cannot carry."""
    return _NOT_XML.sub("", text)


def twiml_response(twiml: TwiML) -> Response:
    """The HTTP answer carrying `twiml`, with what XML cannot carry dropped from every value in
    it (form fields echoed back, an LLM's reply): the markup itself is always XML, and escaping
    never makes such characters, so dropping them from the whole document is the same."""
    return Response(xml_safe(str(twiml)), media_type="application/xml")
