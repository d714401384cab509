"""What a refusal, whole or in part, tells the subject, per regime: the rule that obliges us to say
it (and whether it obliges us to name the remedies too), the authority they can complain to
(named, with its contact details), the courts, and the appeal where the law grants one (the US
state laws), or the complaint to us where the law makes us hear one (the UK GDPR: Data
Protection Act 2018 s. 164A). Letters read all of it from here, never from their templates, so
that a DPO changes an address or a sentence in the policy alone."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, EmailStr, Field, HttpUrl, ValidationError, model_validator

from dsrflow.domain.deadlines import MAX_COMPLAINT_DAYS
from policy.strict import StrictModel
from schemas.plain_text import StaffLine, StaffText, refuse_blank

# The longest interval between a complaint's progress letters the policy may set.
MAX_PROGRESS_DAYS = 90


class Authority(StrictModel):
    name: str
    address: str
    website: str
    # Not every authority publishes an e-mail address or a telephone line for complaints.
    email: EmailStr | None = None
    phone: str | None = None


class Appeal(StrictModel):
    """The appeal a US state law grants against a refusal, or the complaint to us the UK's law
    makes us hear (which of the two: dsrflow/domain/deadlines.py `reconsiders`). Its days live
    with the other deadlines there (`compute_deadline(..., appeal=True)`): an appeal's statutory,
    a complaint's 30 days to acknowledge and our target for its outcome."""

    rule: str  # the provision granting it, e.g. "Va. Code § 59.1-577(C)", "Data Protection Act 2018, s. 164A"
    # A complaint's only (the Act says "without undue delay", in no number of days): our target for
    # its outcome, in days from receipt, its due date and what the letters promise; none: 30. An
    # appeal's days are the statute's, which the policy cannot change (policy/model.py refuses it).
    answer_days: int | None = Field(None, ge=1, le=MAX_COMPLAINT_DAYS)
    # A complaint's only: s. 164A(5)(b) has us inform the complainant of its progress. Days after its
    # receipt when a progress letter goes while the complaint is undecided, and again every that
    # many days until its outcome (workflows/complaint_progress.py); none: no progress letter.
    progress_days: int | None = Field(None, ge=1, le=MAX_PROGRESS_DAYS)
    # The right to complain in a letter that decides an appeal, or gives a complaint's outcome (the
    # statute's "if the appeal is denied"; the Commissioner once we have answered): `complaint`
    # speaks of an appeal still to come ("If we deny your appeal, ...").
    complaint_after_appeal: str | None = None
    # The right to complain in a letter that decides no appeal or complaint and offers none: under
    # a US state law the restriction-lift letter (lifting refuses nothing, so no appeal lies against
    # it) and an appeal closed undecided (unverified, or by staff); under the UK GDPR a complaint
    # closed undecided (a UK lift letter still offers the complaint to us). `complaint` speaks of an
    # appeal or complaint to come and `complaint_after_appeal` of one decided. None: `complaint`
    # (a policy version stored before this text).
    complaint_without_appeal: str | None = None


class PortalWords(StrictModel):
    """Words of the letters' right to complain that speak of the e-mail they are in (the LGPD's
    "keep this e-mail"), and what the portal's page of a late request says in their place: a page
    is no e-mail ("keep our e-mails about this request"). The rest of the paragraph is the letters',
    so that a change to it is made once and reaches both."""

    letters: str = Field(min_length=1)
    portal: str = Field(min_length=1)


class SaleOptOut(StrictModel):
    """The question a refused deletion asks where we sell or share personal information (CCPA
    regulations, Cal. Code Regs. tit. 11 § 7022(f)(4)): whether the consumer wants to opt out of
    the sale or sharing, with a link to the notice of the right to opt out (§ 7013)."""

    # Each read by the subject under our letterhead, as the policy wrote it: nothing blank (a
    # heading of spaces loaded and headed an empty section), no line break in the heading (a
    # forged line of the letter's plain text), no mark that makes it read otherwise than written.
    heading: Annotated[StaffLine, AfterValidator(refuse_blank)] = Field(min_length=1)
    # The question and the notice, which the link completes ("... our notice of it is at").
    text: StaffText = Field(min_length=1)
    link: HttpUrl


class Remedies(StrictModel):
    # Completes "As ... requires, we set out below our reasons ..." (`refusal_rule_requires`).
    refusal_rule: str
    # What `refusal_rule` obliges a refusal to give: its reasons and the remedies (GDPR Art. 12(4),
    # PIPEDA s. 8(7), the US appeal laws), or its reasons alone (the CCPA's regulations, LGPD Art.
    # 18 § 4), whose letters still give the remedies but no longer say the rule requires them
    # (docs/legal.md, "Refusals and remedies"). The default keeps a policy's letters as they were.
    refusal_rule_requires: Literal["reasons", "reasons_and_remedies"] = "reasons_and_remedies"
    # Completes "Your right to complain to ...", e.g. "the supervisory authority".
    authority_title: str
    # The right to complain, with its source; the authority's details follow it.
    complaint: str
    # The same where the authority named is the one of the subject's country rather than ours
    # (`authority` unset and the policy lists the subject's country): `complaint` may end by
    # introducing the authority as the one competent for us, which that one is not.
    complaint_where_you_live: str | None = None
    # The authority; none: the supervisory authority of the subject's country where the policy
    # lists one, else that of the controller's country (GDPR Art. 77 and 56).
    authority: Authority | None = None
    # None: the letter's own heading, "Your right to a judicial remedy", in the letter's language.
    judicial_heading: str | None = None
    judicial: str
    appeal: Appeal | None = None
    # The words the portal's status page of a late request says in place of some of the letters'
    # (`portal_complaint`); None: the letters' words as they are.
    complaint_on_portal: PortalWords | None = None
    # PIPEDA s. 8(4): the extension notice also names the right to complain about the extension.
    complaint_on_extension: bool = False
    # The CCPA's only (policy/model.py): we sell or share personal information (Cal. Civ. Code
    # § 1798.140(ad), (ah)), so a deletion refused in whole or in part asks `sale_opt_out`'s question.
    sells_or_shares: bool = False
    sale_opt_out: SaleOptOut | None = None

    @model_validator(mode="before")
    @classmethod
    def _whole_paragraph(cls, value: Any) -> Any:
        # Policy versions stored before the portal's words were derived from the letters' gave the
        # portal's whole paragraph; the requests that started under them still load, that paragraph
        # in place of the letters' whole one.
        if isinstance(value, dict) and isinstance(value.get("complaint_on_portal"), str):
            return {**value, "complaint_on_portal": {"letters": _letters_complaint(value),
                                                     "portal": value["complaint_on_portal"]}}
        return value

    @model_validator(mode="after")
    def _opt_out_asked(self) -> Self:
        if self.sells_or_shares and self.sale_opt_out is None:
            raise ValueError("sale_opt_out.link: needed, since sells_or_shares is true: a refused deletion must "
                             "ask whether the consumer wants to opt out of the sale or sharing, with the notice "
                             "of that right or a link to it (Cal. Code Regs. tit. 11 § 7022(f)(4))")
        return self

    @model_validator(mode="after")
    def _portal_words_in_the_letters(self) -> Self:
        words = self.complaint_on_portal
        if not words:
            return self
        # Once: `portal_complaint` replaces each, and words the paragraph says more than once ("the")
        # made the page say another paragraph than the letters'.
        times = self._without_appeal().count(words.letters)
        stands_for = "appeal.complaint_without_appeal" if self._appeal_words() else "complaint"
        if not times:
            raise ValueError(f"complaint_on_portal.letters: {words.letters!r} is not in the letters' words it "
                             f"stands for ({stands_for}), so the portal would say them unchanged")
        if times > 1:
            raise ValueError(f"complaint_on_portal.letters: {words.letters!r} is {times} times in the letters' words "
                             f"it stands for ({stands_for}), not once, so the portal would replace each")
        return self

    def portal_complaint(self) -> str:
        """The right to complain as the portal's status page of a late request says it: as a letter
        that offers no appeal does (lateness decides nothing to appeal:
        `appeal.complaint_without_appeal`, activities/letter_refusals.py), `complaint_on_portal`'s
        words in place of those that speak of the e-mail a letter is."""
        text = self._without_appeal()
        words = self.complaint_on_portal
        return text.replace(words.letters, words.portal) if words else text

    def _appeal_words(self) -> str | None:
        return self.appeal.complaint_without_appeal if self.appeal else None

    def _without_appeal(self) -> str:
        return self._appeal_words() or self.complaint


def _letters_complaint(value: dict[str, Any]) -> Any:
    """`Remedies._without_appeal` of remedies not yet validated."""
    appeal = value.get("appeal")
    return (appeal.get("complaint_without_appeal") if isinstance(appeal, dict) else None) or value.get("complaint")


def check_translated(remedies: dict[str, Any], language: str) -> None:
    """Each regime's remedies as the policy's translation into `language` words them still hold
    together (the portal's words are in the translated complaint); ValueError names the path."""
    for regime, given in remedies.items():
        try:
            Remedies.model_validate(given)
        except ValidationError as exc:
            problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            raise ValueError(f"translations.{language}.remedies.{regime}: {problems}") from None
