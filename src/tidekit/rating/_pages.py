"""The rating app's responses: pages from the Jinja2 templates, messages, redirects, cookies, forms.

:class:`Pages` holds what every page shares (the study's title and consent text, the URL prefix,
the cookie settings), so a route says only what differs. Jinja2 escapes all text
(``autoescape``); undefined template variables are errors, not blanks. Forms are read by
:func:`read_form`, which refuses anything but a plain URL-encoded form of text fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from tidekit.rating._config import RatingStudyConfig
from tidekit.rating._store import FACTORS

__all__ = ["FORM_TYPE", "MAX_COMMENT", "QUESTIONS", "RETURN_TO_PROLIFIC", "BadForm", "Pages", "read_form",
           "templates"]

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_COMMENT = 2000
RETURN_TO_PROLIFIC = "If you came from Prolific, please return the study there."
HERE = Path(__file__).parent
_EXPIRED = "This form has expired or did not come from this site. Go back, reload the page and try again."

# the question wording is the rating form's own; the factor ids (and their order) are the one
# list in tidekit.scenarios, via FACTORS, so a form question always matches a ratings column
_FACTOR_QUESTIONS = {
    "emotion_recognition": "Emotion recognition: does the reply recognise what the person feels?",
    "distress_normalization": "Distress normalization: does it make the person's reactions feel understandable?",
    "supportive_reflection": "Supportive reflection: does it reflect what matters and offer gentle support?",
}
QUESTIONS = (
    ("empathy", "Overall, how empathetic is this reply?",
     "How understood and supported would the person feel?"),
    *((factor, _FACTOR_QUESTIONS[factor], "") for factor in FACTORS),
)


class BadForm(Exception):
    """A request body that is not a plain form of text fields."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


@cache
def templates() -> jinja2.Environment:
    """The templates, loaded once per process (no reload: the files ship with the package)."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                              autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True, auto_reload=False)


async def read_form(request: Request) -> dict[str, str]:
    """The body as text fields (NUL bytes dropped, the first of repeated keys kept); raises BadForm
    for anything else."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM_TYPE:
        raise BadForm(415, "This page only accepts answers sent from its own form.")
    form = await request.form()
    out: dict[str, str] = {}
    for key, value in form.multi_items():
        if not isinstance(value, str):
            raise BadForm(400, "This page only accepts text answers.")
        out.setdefault(key, value.replace("\x00", ""))
    return out


@dataclass(frozen=True)
class Pages:
    """Renders the study's pages and sets its cookies (HttpOnly, SameSite=Lax; ``__Host-`` and
    Secure with ``secure``)."""

    study: RatingStudyConfig
    root: str  # the URL prefix when served under a sub-path (``root_path``)
    secure: bool
    cookie_path: str
    empty_scales: Markup  # the rating scales with nothing chosen: the same for every fresh item page

    @classmethod
    def build(cls, study: RatingStudyConfig, root: str, secure: bool) -> Pages:
        scales = Markup(templates().get_template("_scales.html").render(
            questions=QUESTIONS, scale=study.scale, values={}))
        # __Host- cookies must have Path=/
        return cls(study=study, root=root, secure=secure, cookie_path="/" if secure else (root or "/"),
                   empty_scales=scales)

    def cookie_name(self, base: str) -> str:
        return "__Host-" + base if self.secure else base

    def page(self, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        study = self.study
        base = {"title": study.title, "consent": study.consent, "root": self.root, "withdraw_link": False}
        return HTMLResponse(templates().get_template(name).render(**(base | ctx)), status_code=status)

    def message(self, heading: str, *paragraphs: str, status: int = 200, link: dict[str, str] | None = None,
                withdraw_link: bool = False) -> HTMLResponse:
        return self.page("message.html", status=status, heading=heading, paragraphs=paragraphs, link=link,
                         withdraw_link=withdraw_link)

    def back_link(self, text: str = "Back to the study") -> dict[str, str]:
        return {"href": self.root + "/", "text": text}

    def redirect(self, path: str) -> RedirectResponse:
        return RedirectResponse(self.root + path, status_code=303)

    def set_cookie(self, resp: Response, name: str, value: str, max_age: int) -> None:
        resp.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax", secure=self.secure,
                        path=self.cookie_path)

    def delete_cookie(self, resp: Response, name: str) -> None:
        resp.delete_cookie(name, path=self.cookie_path, secure=self.secure, httponly=True, samesite="lax")

    def forbidden(self, text: str = _EXPIRED) -> HTMLResponse:
        return self.message("Request refused", text, status=403, link=self.back_link())

    def too_many(self, wait: float) -> HTMLResponse:
        resp = self.message("Please slow down", "You are sending answers faster than anyone can read. "
                            "Wait a few seconds, then go back and submit again.", status=429)
        resp.headers["Retry-After"] = str(max(1, round(wait)))
        return resp

    def contact_suffix(self) -> str:
        """`` (contact)`` when the study names a contact, else nothing."""
        contact = self.study.consent.contact
        return f" ({contact})" if contact else ""
