"""Causes for a domain nobody wrote a taxonomy for: what complaints blame, found in the complaints themselves.

A complaint names a cause by its **target**: the thing, person or step it blames («صبحانه», «اینترنت», «ترجمه
کتاب», «پرسنل پذیرش»). The rest of the sentence is how the customer feels about it («خیلی بد بود», «راضی نبودم»),
how strongly («اصلا», «واقعا»), a verdict or rating («در حد سه ستاره نیست»), an intention («دیگه سفارش نمیدم»),
a greeting or a question. Those are the same in every business, so grouping whole sentences by their wording makes
themes of moods. Here each complaint is cut into clauses (at commas, dashes, list marks), and a clause's targets are
its words that are none of those: not a stop word (hazm's list and ours), not a feeling, verdict, intensifier or
rating word, not a verb (hazm's lemmatizer, and the colloquial «می/نمی» forms it misses), not a word most of the
report's comments use (the business itself: «هتل», «کتاب»). Adjacent targets make a phrase («سرویس بهداشتی»).

`induce_codebook` turns the targets that enough complaining comments share into a draft taxonomy: one aspect per
group of targets (a target blamed mostly in a commoner one's clauses joins it; where the encoder's folder exists,
targets whose complaints read alike are joined too), named by its commonest target as the customers write it, its
seeds the group's targets. `assign` finds them in a complaint's clauses, and the same file, edited by an analyst,
drives the next run.

`taxonomy_fit` says how much of what complaints blame a shipped taxonomy names (its seeds, product, context and
domain words): a taxonomy is used only where that share reaches a threshold; below it the report discovers.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from bazkhord.data.taxonomy import Aspect, Taxonomy
from bazkhord.model.themes.opinion import FORMULAIC, REACTION
from bazkhord.model.themes.steps import PLACEHOLDER, WORD, lemma, stopwords
from bazkhord.model.themes.steps import is_verb as hazm_verb

DISCOVERED = "discovered"  # the domain of a draft codebook: its aspects are found in a complaint's blaming clauses

# How a customer judges: feelings and verdicts.
_JUDGING = frozenset((
    "بد", "بده", "بدی", "بدیه", "بدتر", "بدترین", "افتضاح", "افتضاحه", "افتضاحی", "فاجعه", "فاجعست", "وحشتناک",
    "مزخرف", "مزخرفه", "داغون", "ضعیف", "ضعیفه", "ضعیفی", "معمولی", "معمولیه", "متوسط", "پایین", "پائین", "بالا",
    "بالاست", "کم", "کمه", "زیاد", "زیاده", "نامناسب", "ناراضی", "نارضایتی", "ناامید", "ناامیدکننده", "دلخور",
    "ناراحت", "ناراحتم", "متاسف", "متاسفم", "متاسفانه", "متأسفانه", "حیف", "اشتباه", "اشتباهی", "مشکل", "ایراد",
    "عیب", "ضعف", "انتظار", "انتظارات", "توقع",
))
_BAD = frozenset(("بد", "بده", "بدی", "بدتر", "بدترین", "افتضاح", "افتضاحه", "فاجعه", "وحشتناک", "مزخرف", "داغون",
                  "ضعیف", "ضعیفه", "نامناسب", "ناراضی", "متاسفانه", "متأسفانه", "حیف", "اشتباه", "ایراد", "عیب", "ضعف",
                  "مشکل", "نبود", "نداشت", "نیست", "نداره", "ندارد", "نمیشد", "نشد", "فاقد", "بدون"))
# Judging words that also name what went wrong («کثیف», «گران»): a judgement, and a cause.
_PROBLEMS = frozenset(("گران", "گرون", "کثیف", "خراب", "قدیمی", "کهنه", "دیر", "سرد", "شلوغ", "تاخیر", "کند", "بدمزه",
                       "بی‌کیفیت", "بیکیفیت", "شکسته", "ناقص", "تقلبی", "کوچک", "کوچیک", "تنگ", "تاریک", "سروصدا"))
# Feelings, verdicts, degrees and the words around a story. None of them is a cause.
VERDICT_WORDS = _JUDGING | frozenset((
    "بد", "بده", "بدی", "بدیه", "بدتر", "بدترین", "خوب", "خوبه", "خوبی", "خوبیه", "بهتر", "بهترین", "عالی", "عالیه",
    "افتضاح", "افتضاحه", "افتضاحی", "فاجعه", "فاجعست", "وحشتناک", "مزخرف", "مزخرفه", "داغون", "ضعیف", "ضعیفه", "ضعیفی",
    "معمولی", "معمولیه", "متوسط", "پایین", "پائین", "بالا", "بالاست", "کم", "کمه", "کمی", "زیاد", "زیادی", "زیاده",
    "بیشتر", "کمتر", "جالب", "جالبی", "نامناسب", "مناسب", "مناسبی", "قابل", "قبول", "راضی", "ناراضی", "رضایت",
    "نارضایتی", "رضایتبخش", "رضایت‌بخش", "انتظار", "انتظارات", "توقع", "ناامید", "ناامیدکننده", "دلخور", "ناراحت",
    "ناراحتم", "متاسف", "متاسفم", "متاسفانه", "متأسفانه", "حیف", "لذت", "دوست", "دوستش", "خوشم", "خوشمون", "بدم",
    "اشتباهی", "ممکن", "لازم", "بیخود", "الکی", "حرف", "تعریفی", "تعریف", "شرمنده", "خجالت", "عجیب", "افسوس",
    "نظرم", "بنظرم", "نظر", "شاید", "کاش", "امیدوارم", "لطفا", "لطفاً", "خواهش", "پیشنهاد", "توصیه", "میکنم", "نمیکنم",
    "افتضاحترین", "ارزشمند", "بی‌نظیر", "بینظیر", "فوق", "العاده", "العاده‌ای", "کلی", "کلا", "کل", "اصلا", "اصلن",
    "واقعا", "واقعاً", "خیلی", "خیلیی", "بسیار", "کاملا", "کاملاً", "نسبتا", "نسبتاً", "تقریبا", "حتی", "فقط", "تنها",
    "همش", "همه", "همگی", "همچنین", "دیگه", "دیگر", "باز", "بازم", "هنوز", "هرگز", "هیچوقت", "هیچ", "هیچی", "یکم", "یه",
    "یک", "دو", "سه", "اول", "اولین", "آخر", "آخرین", "اخر", "اخرین", "بار", "دفعه", "چند", "چندان", "انقدر", "اینقدر",
    "آنقدر", "اونقدر", "چقدر", "ولی", "اما", "البته", "ضمن", "ضمنا", "درکل", "کلاً", "مجموع", "درمجموع", "خلاصه",
    "چیز", "چیزی", "چیزها", "موضوع", "مورد", "موارد", "مشکل", "مشکلی", "مشکلات", "ایراد", "ایرادی", "ایرادات", "عیب",
    "نکته", "نکات", "منفی", "مثبت", "ضعف", "قوت", "حد", "حدی", "لحاظ", "نظر", "جهت", "طور", "طوری", "نوع", "قسمت",
    "بخش", "جا", "جای", "جایی", "وضعیت", "وضع", "کار", "کارش", "تجربه", "تجربه‌ای", "اتفاق", "مدت", "وقت", "روز",
    "روزها", "شب", "ساعت", "دقیقه", "ماه", "سال", "امسال", "پارسال", "قبل", "بعد", "الان", "اخیرا", "اخیراً", "دوباره",
    "مجدد", "ستاره", "ستارش", "ستاره‌ای", "امتیاز", "نمره", "درجه", "سطح", "کیفیتش", "آدم", "ادم", "آدمو", "مردم",
    "خودم", "خودمون", "خودتون", "خودشون", "خود", "شما", "ما", "من", "اونا", "آنها", "ایشان", "کسی", "کسانی", "دوستان",
    "عزیزان", "مسافران", "مشتری", "مشتریان", "مشتریا",
    # Praise: a verdict too, and never what a complaint blames («هتل زیبا», «پرسنل مودب»).
    "زیبا", "زیبایی", "قشنگ", "قشنگی", "شیک", "جذاب", "محشر", "خوشگل", "دلنشین", "باحال", "مودب", "مودبی", "بی‌نظیر",
    "بینظیر", "فوق‌العاده", "فوق‌العاده‌ای", "عالیی", "خوش", "خوشحال", "ممتاز", "درجه‌یک", "استثنایی", "دلپذیر",
    # Words around a story, not what it blames: when, where, with whom, how.
    "حتما", "حتماً", "توجه", "موقع", "موقعی", "داخل", "خارج", "همراه", "سر", "تاریخ", "زمان", "مراجعه", "صورت", "دلیل",
    "خاطر", "بخاطر", "علت", "اونجا", "آنجا", "اینجا", "اینا", "اون", "آن", "استفاده", "انجام", "مثلا", "مثلاً", "اگه",
    "اگر", "قرار", "بنده", "همسرم", "همسر", "خانواده", "خانوادم", "خانواده‌ام", "بچه", "بچه‌ها", "بچه‌هام", "مادرم",
    "پدرم", "دوستم", "دوستانم", "دخترم", "پسرم", "سفر", "سفری", "مسافرت", "اقامت", "اقامتم", "اقامتمون", "فروردین",
    "اردیبهشت", "خرداد", "تیر", "مرداد", "شهریور", "مهر", "آبان", "ابان", "آذر", "اذر", "دی", "بهمن", "اسفند",
    "نوروز", "عید", "تعطیلات", "هفته",
    "دیروز", "امروز", "دیشب", "فردا", "پیش", "گذشته", "انتخاب", "نسبت", "مقایسه", "کشور", "کشورهای", "دنیا",
    "برام", "برامون", "ازش", "ازشون", "بهش", "بهشون", "واسه", "واسم", "انگار", "همون", "همین", "اینه", "اونه", "ای",
    "شخصا", "شخصاً", "خودش", "دنبال", "بقیه", "سایر", "دیگران", "بعضی", "برخی", "اکثر", "خیلیا",
    "اصولا", "معمولا", "معمولاً", "طبیعتا", "ظاهرا", "ظاهراً", "احتمالا", "حال",
))
# Praise, unless negated: «اتاق تمیز» blames nothing, «اتاق تمیز نبود» does.
PRAISE = frozenset(("خوب", "خوبه", "خوبی", "عالی", "عالیه", "تمیز", "تمیزه", "تمیزی", "زیبا", "قشنگ", "شیک", "مودب",
                    "مودبی", "راحت", "خوشمزه", "بی‌نظیر", "بینظیر", "محشر", "فوق‌العاده", "مناسب", "مناسبی", "کامل",
                    "تازه", "سریع", "به‌موقع", "گرم", "مهربان", "مهربون", "صمیمی", "حرفه‌ای", "دلنشین", "خوش", "لذیذ",
                    "عالیی", "تشکر", "ممنون", "ممنونم", "سپاس", "نزدیک", "بزرگ", "دلباز", "آرام", "ارام", "مرتب",
                    "جذاب", "روان", "قوی", "ارزان", "منصفانه", "رایگان"))
_NEGATION_WORDS = frozenset(("نه", "نا", "غیر", "بی", "بدون", "فاقد", "هیچ", "کم", "نبود", "نیست", "نبودن", "نبودند",
                             "نیستند", "نداشت", "نداره", "ندارد", "نشد", "نمیشه", "نمی‌شه", "نداشتن", "نداشتند"))
# «ما سه شب در این هتل اقامت داشتیم», «کتاب رو دیروز خوندم»: the story around a complaint, told in the first
# person with nothing judged in it, blames nothing.
_FIRST_PERSON = re.compile(r"(م|یم|یمش|مش)$")
_NUMBERS = frozenset(("یک", "یه", "دو", "سه", "چهار", "پنج", "شش", "شیش", "هفت", "هشت", "نه", "ده", "چند", "چندین",
                      "نیم", "بیست", "سی", "صد", "هزار"))


def negates(clause: str) -> bool:
    return any(w in _NEGATION_WORDS or w.startswith(("نمی", "نمي")) or (w.startswith("ن") and is_verb(w[1:]))
               for w in WORD.findall(clause))


def narrates(clause: str) -> bool:
    """A first-person verb and nothing judged or negated: the customer's story («اقامت داشتیم»)."""
    words = WORD.findall(clause)
    told = any(is_verb(w) and _FIRST_PERSON.search(w) for w in words)
    judged = any(w in _JUDGING or w in _PROBLEMS or w in PRAISE for w in words) or negates(clause)
    return told and not judged


# Questions («چرا ...؟»), intentions («دیگه سفارش نمیدم», «پیشنهاد نمی‌کنم») and discount codes are no causes.
QUESTION = re.compile(r"[?؟]|^\s*(چرا|آیا|ایا|کی|چطور|چطوری|چگونه|کجا)\b")
INTENTION = re.compile(
    r"(پیشنهاد|توصیه)\s*(نمی|نمي|نمـ)|(دیگه|دیگر|هرگز|هیچوقت|هیچ\s*وقت|دوباره|مجدد|بار\s*آخر)\b.{0,30}(نمی|نمي|نخواهم|نخواهیم)"
    r"|(آخرین|اخرین)\s*بار|(سفارش|خرید)\s*(نمی|نمي)")
DISCOUNT = re.compile(r"کد\s*(تخفیف|هدیه)|تخفیف\s*(بدید|بدین|بزارید|بذارید)")
CLAUSE = re.compile(r"\s*(?:[،,؛;:!\n•*|]+|\s[-–—_]+\s?|(?:^|\s)[0-9۰-۹]+\s*[-.)]\s*|\.{2,})\s*")
# Nouns that start like a continuous verb («میز», «میوه»); any other «می...» word is a verb.
_MI_NOUNS = ("میز", "میوه", "میهمان", "میدان", "میکرو", "میراث", "میان", "میلیون", "میل", "میگو", "مینی", "میکس",
             "میخ", "میهن", "میلاد", "میمون", "میکاپ", "میسر", "میعاد")
# Colloquial and auxiliary verb forms hazm's lemmatizer does not know: a past stem with a person ending, negated
# or not («خوندم», «نیومد», «نداشتن»), and the forms of «بودن», «شدن», «است».
_PAST = ("بود", "شد", "کرد", "داشت", "گرفت", "دید", "اومد", "آمد", "امد", "رفت", "داد", "خورد", "زد", "گفت", "ساخت",
         "موند", "ماند", "خوند", "خواند", "خرید", "رسید", "کشید", "برد", "آورد", "اورد", "فرستاد", "گذاشت", "نوشت",
         "پخت", "شست", "خواست", "تونست", "توانست", "دونست", "دانست", "فهمید", "شنید", "پرسید", "خوابید", "نشست",
         "افتاد", "انداخت", "برگشت", "گشت", "ریخت", "سوخت", "پیچید", "چسبید", "ترسید", "کرده", "شده", "بوده", "داده",
         "گرفته", "رسیده", "اومده", "آمده", "خونده", "خوانده", "دیده", "زده", "خورده", "داشته", "گذشت", "کشیده")
_VERB_FORMS = re.compile(r"^(ن|نی|ب)?(" + "|".join(_PAST) + r")(م|ی|ه|یم|ید|ین|ن|ند|ست|اند|ام|ایم|‌ام|‌ایم|‌اند)?$"
                         r"|^ن?(است|هست|نیست|هستش|نیستش|هستن|نیستن|باشه|باشد|باشند|باشید|بشه|نشه|شه|کنه|کنن|کنید|داره|دارن|"
                         r"ندارن|نداره|دارد|ندارد|دارند|ندارند|بده|بدن|بدید|بکنه|بکنید|بخرید|بخونید)$")

_SUBJUNCTIVE = re.compile(r"^ب(گ|د|ک|کن|خ|ز|ر|ش|گیر|خور|خون|خوا|خر|بین|ی|یا|دار|ذار|زار|فرست|پرس|مون|من|تون|سپار)"
                          r"(م|ی|ه|یم|ید|ین|ن|ند)$")


def clauses(normalised: str) -> list[str]:
    """A statement cut at commas, list marks and dashes: «اتاق کوچک، صبحانه بد، اینترنت ضعیف» is three causes."""
    return [part for part in CLAUSE.split(normalised) if part and part.strip()]


@lru_cache(maxsize=100_000)
def is_verb(word: str) -> bool:
    if word.startswith(("نمی", "نمي", "می\u200c", "مي\u200c")):
        return True
    if word.startswith(("می", "مي")) and len(word) > 3 and not word.startswith(_MI_NOUNS):
        return True
    return bool(_VERB_FORMS.match(word) or _SUBJUNCTIVE.match(word)) or hazm_verb(word)


def praises(clause: str) -> bool:
    """A clause that praises and negates nothing («پرسنل مودب», «اتاق‌ها تمیز بود»)."""
    words = WORD.findall(clause)
    return any(w in PRAISE or lemma(w) in PRAISE for w in words) and not negates(clause)


def cause_text(normalised: str, business: frozenset[str] = frozenset()) -> str:
    """The clauses of a statement that name a cause, praising nothing; the whole statement when none does."""
    parts = clauses(normalised)
    kept = [c for c in parts if targets(c, business) and not praises(c)]
    return "، ".join(kept) if kept and len(kept) < len(parts) else normalised


def complains(normalised: str) -> bool:
    """A clause that names a problem or judges badly and praises nothing unnegated («اینترنت ضعیف بود», «حوله‌ها
    کهنه»), whatever a model trained on another business reads."""
    for clause in clauses(normalised) or [normalised]:
        words = WORD.findall(clause)
        bad = any(w in _BAD or lemma(w) in _BAD or w in _PROBLEMS or _lacking(w) for w in words) or negates(clause)
        if bad and targets(clause) and not praises(clause):
            return True
    return False


def _lacking(word: str) -> bool:
    """«بی‌ادب», «بی‌کیفیت», «بداخلاق», «بدبو»: a word of want or fault (not «بی‌نظیر», «بدون»)."""
    return word not in PRAISE and ((word.startswith("بی\u200c") and len(word) > 4)
                                   or (word.startswith("بد") and len(word) > 3 and word not in ("بدون", "بدنه", "بدن")))


def names_cause(normalised: str, business: frozenset[str] = frozenset()) -> bool:
    """False for a statement that blames nothing: questions, intentions, discount codes, or nothing but feelings,
    verdicts, degrees, ratings, the business itself and stop words («خیلی بد بود», «در حد سه ستاره نیست», «دیگه
    سفارش نمیدم»)."""
    return any(targets(clause, business) and not praises(clause) for clause in clauses(normalised) or [normalised])


@dataclass(frozen=True)
class Target:
    key: str  # lemma (words joined by a space for a phrase)
    surface: str  # as written


def targets(clause: str, common: frozenset[str] = frozenset()) -> list[Target]:
    """The words (and adjacent pairs) of one clause that can name what it blames; `common` holds the words most of
    the report's comments use (the business itself)."""
    if QUESTION.search(clause) or INTENTION.search(clause) or DISCOUNT.search(clause) or PLACEHOLDER.search(clause) \
            or narrates(clause):
        return []  # a question, an intention, a discount code, contact details («شماره من [PHONE]»), a story
    words = WORD.findall(clause)
    keep = [_target_word(w, common) for w in words]
    for i in range(len(words)):
        # «اقامت داشتیم», «رزرو کردیم»: what the customer did, not what went wrong; «دو تخته», «سه شب»: a count.
        if i + 1 < len(words) and is_verb(words[i + 1]) and _FIRST_PERSON.search(words[i + 1]):
            keep[i] = None
        if i > 0 and (words[i - 1].isdigit() or words[i - 1] in _NUMBERS):
            keep[i] = None
    found: list[Target] = []
    for i, (word, key) in enumerate(zip(words, keep, strict=True)):
        if key is None:
            continue
        found.append(Target(key, word))
        if i + 1 < len(words) and keep[i + 1] is not None and keep[i + 1] != key:
            found.append(Target(f"{key} {keep[i + 1]}", f"{word} {words[i + 1]}"))
    return found


# Where the customer was, not what went wrong («سفر به کیش», «هتل‌های مشهد», «بهتر از ترکیه»): countries, Iran's
# provincial capitals and the towns travellers write about. A complaint about a place's distance or access names the
# distance («فاصله», «دسترسی»), not the town. Where a product was made («ساخت چین») can be the complaint
# itself, so China is not here.
PLACES = frozenset((
    "ایران", "ایرانی", "تهران", "مشهد", "اصفهان", "شیراز", "تبریز", "کرج", "قم", "اهواز", "کرمانشاه", "ارومیه", "رشت",
    "زاهدان", "کرمان", "همدان", "یزد", "اردبیل", "بندرعباس", "اراک", "زنجان", "سنندج", "قزوین", "خرم‌آباد", "خرماباد",
    "گرگان", "ساری", "بوشهر", "بیرجند", "بجنورد", "ایلام", "شهرکرد", "یاسوج", "سمنان", "کاشان", "کیش", "قشم", "چابهار",
    "رامسر", "چالوس", "نوشهر", "بابلسر", "انزلی", "ماسوله", "سرعین", "شمال", "جنوب", "ترکیه", "استانبول", "آنتالیا",
    "دبی", "امارات", "ارمنستان", "گرجستان", "تفلیس", "ایروان", "تایلند", "مالزی", "اروپا", "آمریکا", "امریکا", "آلمان",
    "عراق", "کربلا", "نجف",
))
_NOT_TARGET = VERDICT_WORDS | REACTION | FORMULAIC | PLACES


# Prepositions with a pronoun («براتون», «بهشون», «باهاش»): about whom, never what.
_PREPOSITION_PRONOUN = re.compile(r"^(برا|برای|به|بهش|از|ازش|با|باها|واس|واسه|پیش)(م|ت|ش|مون|تون|شون|ئم|یت)$")


def _target_word(word: str, common: frozenset[str]) -> str | None:
    if len(word) < 2 or word.isdigit() or any(ch.isdigit() for ch in word) or _PREPOSITION_PRONOUN.match(word):
        return None
    if word in _NOT_TARGET or word in stopwords() or is_verb(word):
        return None
    key = lemma(word)
    if key in _NOT_TARGET or key in stopwords() or key in common or word in common:
        return None
    return key


_THIS = frozenset(("این", "اين", "همین", "همچین", "چنین"))
_SUFFIXES = ("", "ی", "ها", "های", "\u200cها", "\u200cهای", "ش", "ای", "\u200cای", "\u200cی", "هایی", "\u200cهایی")


def business_words(texts: Sequence[str], everywhere: float = 0.6, named: float = 0.05, this: float = 0.15) -> frozenset[str]:
    """The business itself: what comments call «this X» («این هتل», «این کتاب», «این گوشی»; not «با این قیمت») in
    at least `this` of the places they use X, among words in at least `named` of the comments; and any word in
    `everywhere` of them. It is what every complaint is about, so it names no cause alone."""
    if not texts:
        return frozenset()
    used: Counter[str] = Counter()
    after_this: Counter[str] = Counter()
    occurrences: Counter[str] = Counter()
    for text in texts:
        words = WORD.findall(text)
        used.update({lemma(w) for w in words})
        for before, previous, word in zip(["", "", *words], ["", *words], words, strict=False):
            key = lemma(word)
            occurrences[key] += 1
            if previous in _THIS and before != "با":  # «با این قیمت»: at this price, not this thing
                after_this[key] += 1
    n = len(texts)
    # A word in most of a handful of comments may be their one cause: «everywhere» needs a few dozen comments.
    found = {w for w, k in used.items() if w not in stopwords() and ((n >= 30 and k >= everywhere * n)
             or (k >= max(3, named * n) and after_this[w] >= this * occurrences[w]))}
    return frozenset(w + suffix for w in found for suffix in _SUFFIXES)


@dataclass
class CodebookSettings:
    min_comments: int = 8  # complaining comments a target must be blamed in to become (part of) an aspect
    max_aspects: int = 30
    join_similarity: float = 0.3  # centred encoder cosine at which two targets are one aspect (average linkage)


def blamed_terms(complaints: Sequence[tuple[int, str]], common: frozenset[str],
                 examples: dict[str, list[str]] | None = None,
                 clauses_of: dict[str, set[str]] | None = None) -> tuple[Counter[str], dict[str, str]]:
    """Per target (lemma), the number of complaining comments whose clauses blame it, and its commonest form;
    `examples` (when given) gets up to 20 of each target's clauses, `clauses_of` all of them."""
    per_comment: dict[int, set[str]] = {}
    forms: dict[str, Counter[str]] = {}
    for comment, text in complaints:
        for clause in clauses(text):
            for target in targets(clause, common):
                per_comment.setdefault(comment, set()).add(target.key)
                forms.setdefault(target.key, Counter())[target.surface] += 1
                if clauses_of is not None:
                    clauses_of.setdefault(target.key, set()).add(clause)
                if examples is not None and len(found := examples.setdefault(target.key, [])) < 20 \
                        and clause not in found:
                    found.append(clause)
    counts: Counter[str] = Counter()
    for keys in per_comment.values():
        counts.update(keys)
    return counts, {key: form.most_common(1)[0][0] for key, form in forms.items()}


def induce_codebook(complaints: Sequence[tuple[int, str]], business: frozenset[str], encoder: Any = None,
                    settings: CodebookSettings | None = None) -> Taxonomy | None:
    """A draft taxonomy from complaint statements ((comment index, normalised text) pairs): targets blamed in at
    least `min_comments` comments, joined into aspects by the encoder's similarity where there is one, largest
    first; None when no target is blamed that often."""
    s = settings or CodebookSettings()
    examples: dict[str, list[str]] = {}
    examples_all: dict[str, set[str]] = {}
    counts, surface = blamed_terms(complaints, business, examples, examples_all)
    chosen = [t for t, n in counts.most_common() if n >= s.min_comments]
    # A phrase is kept only where each of its words is blamed mostly inside it (a fixed name, «کافی شاپ»): one whose
    # word is blamed far more often alone («صبحانه هتل», but also «سرویس بهداشتی» beside «سرویس») counts under the word.
    chosen = [t for t in chosen if " " not in t or all(counts[w] < 2 * counts[t] for w in t.split())]
    if not chosen:
        return None
    chosen, together = _nested(chosen, counts, examples_all)
    groups = [[*group, *together.get(group[0], [])] for group in _groups(chosen, surface, examples, encoder,
                                                                           s.join_similarity)]
    groups = [list(dict.fromkeys(g)) for g in groups]
    groups.sort(key=lambda g: -sum(counts[t] for t in g))
    aspects = []
    for number, group in enumerate(groups[: s.max_aspects], start=1):
        head = max(group, key=lambda t: (counts[t], " " in t))
        seeds = tuple(dict.fromkeys(surface[t] for t in sorted(group, key=lambda t: -counts[t])))
        aspects.append(Aspect(key=f"cause_{number:02d}", name_fa=surface[head], name_en=f"Cause {number}",
                              description=f"Discovered: complaints blaming {surface[head]} "
                                          f"({sum(counts[t] for t in group)} comments)",
                              description_fa=f"شکایت‌هایی که «{surface[head]}» را مقصر می‌دانند", seeds=seeds))
    context = sorted(w for w in business if not any(w != b and w.startswith(b) for b in business))
    taxonomy = Taxonomy(tuple(aspects), domain=DISCOVERED, context_words=tuple(context))
    return taxonomy


def _nested(terms: list[str], counts: Counter[str], clauses_of: dict[str, set[str]],
            share: float = 0.6) -> tuple[list[str], dict[str, list[str]]]:
    """Targets blamed mostly in the clauses of a commoner one join it («پذیرش جواب درست نمی‌داد»: «جواب» and
    «درست» go with «پذیرش»; «وصل» with «اینترنت»): the same complaints, named by their head."""
    heads: list[str] = []
    joined: dict[str, list[str]] = {}
    for term in sorted(terms, key=lambda t: (-counts[t], t)):
        mine = clauses_of.get(term, set())
        head = next((h for h in heads if mine and len(mine & clauses_of.get(h, set())) >= share * len(mine)), None)
        if head is None:
            heads.append(term)
        else:
            joined.setdefault(head, []).append(term)
    return heads, joined


def _groups(terms: list[str], surface: dict[str, str], examples: dict[str, list[str]], encoder: Any,
            threshold: float) -> list[list[str]]:
    """Targets joined where the complaints that blame them read alike: each target's vector is the encoder's mean
    of the clauses blaming it (so «کثیف» and «نظافت» meet in «اتاق کثیف بود» and «نظافت اتاق ضعیف بود»), joined by
    cosine (average linkage). Each target is its own group without an encoder."""
    if encoder is None or getattr(encoder, "name", "") != "e5" or len(terms) < 2:
        return [[t] for t in terms]
    from sklearn.cluster import AgglomerativeClustering

    texts = list(dict.fromkeys(c for t in terms for c in examples.get(t, [])[:20]))
    index = {text: i for i, text in enumerate(texts)}
    embedded = np.asarray(encoder.embed(texts), dtype=np.float64) if texts else np.zeros((0, 1))
    words = np.asarray(encoder.embed([surface[t] for t in terms]), dtype=np.float64)
    vectors = []
    for k, term in enumerate(terms):
        rows = [index[c] for c in examples.get(term, [])[:20]]
        vectors.append(embedded[rows].mean(axis=0) if rows else words[k])
    # The encoder's vectors share a large common direction (every complaint of one business reads alike to it):
    # centred, what sets one target's complaints apart decides.
    # Both what the complaints say and the word itself: «قیمت» and «هزینه» meet by the word, «کثیف» and «نظافت» by
    # the complaints.
    def centred(m: np.ndarray) -> np.ndarray:
        m = m - m.mean(axis=0)
        return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)

    matrix = np.hstack([centred(np.stack(vectors)), centred(words)]) / np.sqrt(2)
    labels = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                     distance_threshold=1 - threshold).fit_predict(matrix)
    grouped: dict[int, list[str]] = {}
    for term, label in zip(terms, labels.tolist(), strict=True):
        grouped.setdefault(label, []).append(term)
    return list(grouped.values())


def assign(taxonomy: Taxonomy, clause_texts: Sequence[str], business: frozenset[str] = frozenset()) -> list[list[str]]:
    """The aspects of a (discovered or edited) codebook each clause blames, commonest seed first: a one-word seed
    matches a clause that blames that word (its targets, by lemma, so «اتاق‌ها» matches «اتاق»; never a word the
    clause only narrates or praises with); a longer seed, a clause that holds each of its words."""
    seeds: list[tuple[int, frozenset[str]]] = []
    for k, aspect in enumerate(taxonomy.aspects):
        for seed in aspect.seeds:
            words = frozenset(lemma(w) for w in WORD.findall(seed) if w not in stopwords())
            if words:
                seeds.append((k, words))
    keys = taxonomy.keys
    found: list[list[str]] = []
    for clause in clause_texts:
        blamed = {t.key for t in targets(clause, business) if " " not in t.key}
        present = {lemma(w) for w in WORD.findall(clause)}
        hits: list[int] = []
        for k, words in seeds:
            if k in hits:
                continue
            if (len(words) == 1 and words <= blamed) or (len(words) > 1 and words <= present and words & blamed):
                hits.append(k)
        found.append([keys[k] for k in hits])
    return found


def taxonomy_fit(taxonomy: Taxonomy, counts: Counter[str] | dict[str, int], surface: dict[str, str],
                 top: int = 40) -> float:
    """The share of what complaints blame (the `top` words, weighted by the comments blaming them) that the
    taxonomy names: a word of its seeds, aspect names, product, context or domain words (by lemma)."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ranked = [(t, n) for t, n in ranked if " " not in t][:top]
    if not ranked:
        return 0.0
    vocabulary = {lemma(w) for phrase in (*(s for a in taxonomy.aspects for s in a.seeds), *taxonomy.product_words,
                                          *taxonomy.context_words, *taxonomy.domain_words,
                                          *(a.name_fa for a in taxonomy.aspects))
                  for w in WORD.findall(phrase) if w not in stopwords()}
    named = sum(n for t, n in ranked if t in vocabulary or surface.get(t, t) in vocabulary)
    return named / sum(n for _, n in ranked)
