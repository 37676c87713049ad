"""Rendering: the Jinja2 environment, the security headers, and what payloads look like.

Autoescaping is on for every template; values from payloads go through `shown`, which
escapes them and then makes invisible and direction-changing characters (RTL override,
zero-width) visible as their code points, so a payload cannot reorder or hide text.
Every page carries a Content-Security-Policy without inline script.
"""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

import jinja2
from fastapi import Request
from markupsafe import Markup, escape
from starlette.responses import HTMLResponse

from signoff.server.inbox import session

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make Origin `null`
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
MAX_TEXT = 600  # characters of one value shown before "... N more"
MAX_RAW = 256 * 1024  # characters of the raw JSON shown
MAX_DEPTH = 6
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u061c]")

env = jinja2.Environment(
    loader=jinja2.PackageLoader("signoff.server.inbox", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def shown(value: Any, limit: int = MAX_TEXT) -> Markup:
    """`value` as escaped text, cut at `limit` characters, invisible characters shown."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    more = len(text) - limit
    text = text[:limit] if more > 0 else text
    out = _INVISIBLE.sub(lambda m: f"\x00{ord(m.group()):04X}\x01", str(escape(text)))
    out = out.replace("\x00", '<span class="cp" title="hidden character">U+').replace(
        "\x01", "</span>"
    )
    if more > 0:
        out += f'<span class="more">… {more:,} more characters</span>'
    return Markup(out)


def raw_json(value: Any) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False)
    if len(text) > MAX_RAW:
        return text[:MAX_RAW] + f"\n… {len(text) - MAX_RAW:,} more characters"
    return text


def when(at: datetime.datetime | None) -> Markup:
    """A `<time>` the page's script shows in the viewer's time zone (UTC without it)."""
    if at is None:
        return Markup("")
    iso = at.astimezone(datetime.UTC).isoformat(timespec="seconds")
    label = at.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return Markup('<time datetime="{}">{}</time>').format(iso, label)


def event_value(value: Any) -> Markup | str:
    """A value of a history entry: its times (ISO text, as history keeps them) shown like
    every other time on the page, anything else as `shown`."""
    if isinstance(value, str) and 19 <= len(value) <= 40 and value[4:5] == "-":
        try:
            at = datetime.datetime.fromisoformat(value)
        except ValueError:
            at = None
        if at is not None and at.tzinfo is not None:
            return when(at)
    return shown(value, 160)


def time_left(deadline: datetime.datetime | None, now: datetime.datetime) -> str:
    if deadline is None:
        return "no deadline"
    seconds = int((deadline - now).total_seconds())
    word = "left" if seconds >= 0 else "overdue"
    seconds = abs(seconds)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count or parts:
            parts.append(f"{count}{unit}")
    return f"{' '.join(parts[:2]) or '0s'} {word}"


env.filters["shown"] = shown
env.filters["raw_json"] = raw_json
env.filters["as_json"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False)
env.filters["when"] = when
env.filters["event_value"] = event_value
env.globals["MAX_DEPTH"] = MAX_DEPTH
env.globals["time_left"] = time_left


def render(
    request: Request,
    who: session.Viewer,
    template: str,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """The page `template`, with the security headers and the session cookie."""
    html = env.get_template(template).render(
        who=who,
        now=datetime.datetime.now(datetime.UTC),
        auth=request.app.state.auth,
        base=session.base(request),
        **context,
    )
    response = HTMLResponse(html, status_code=status, headers=HEADERS)
    new = getattr(request.state, "new_session", None)
    if new is not None and request.method == "GET":  # a cross-site post signs no one out
        session.set_cookie(request, response, new)
    return response
