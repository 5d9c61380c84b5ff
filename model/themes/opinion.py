"""Statements that carry no opinion: greetings, thanks, wishes and purchase context («سلام», «خسته نباشید»,
«ممنون», «موفق باشید», «دیشب پیتزا سفارش دادم»). A sentiment model trained on whole comments reads them as the
comment's mood (a complaint's greeting as negative, above all under a binary model with no neutral class), so
they are neutral here, whatever the model says, and never join or quote as a complaint.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[\w\u200c]+", re.UNICODE)

# Formulaic words: greetings, thanks, wishes, sign-offs and the words around them. A statement made only of these
# says nothing about the product or the service.
FORMULAIC = frozenset((
    "سلام", "درود", "علیک", "علیکم", "وقت", "روز", "شب", "عصر", "صبح", "بخیر", "به", "خیر", "خسته", "نباشید", "نباشین",
    "خدا", "قوت", "خداقوت", "ممنون", "ممنونم", "ممنونیم", "مرسی", "سپاس", "سپاسگزارم", "سپاسگزاریم", "تشکر", "متشکرم",
    "متشکریم", "تشکر", "میکنم", "می‌کنم", "میکنیم", "می‌کنیم", "موفق", "پیروز", "پاینده", "سلامت", "شاد", "تندرست",
    "باشید", "باشین", "باشی", "حفظتون", "حفظ", "کنه", "عید", "سال", "نو", "مبارک", "ایام", "با", "و", "از", "شما",
    "تون", "ازتون", "ازشما", "بابت", "همه", "همگی", "عزیز", "عزیزان", "عزیزم", "دوستان", "دوست", "همکاران", "همکار",
    "جان", "خیلی", "واقعا", "هم", "ضمن", "احترام", "عرض", "ادب", "یک", "دنیا", "بسیار", "فراوان", "اجرتون", "اجر",
    "لطفتون", "لطف", "زحماتتون", "زحمات", "زحمت",
))

# Ordering, said without a verdict: the context of a comment, not an opinion («امروز ناهار سفارش دادم»).
ORDER_VERB = re.compile(r"(سفارش|خرید)\s*(دادم|دادیم|داده بودم|داده بودیم|کردم|کردیم|کرده بودم|کرده بودیم|گرفتم|گرفتیم)\b"
                        r"|\b(گرفتم|گرفتیم|خریدم|خریدیم)\b")
VERDICT = re.compile(r"بد|خوب|عالی|افتضاح|سرد|دیر|گرم|کم|زیاد|گرون|گران|ارزان|خوشمزه|بی‌?مزه|ناراض|راضی|"
                     r"متاسف|اشتباه|خراب|مونده|مانده|سوخته|خام|شور|تاخیر|نرسید|نیومد|نیامد")
MAX_CONTEXT_WORDS = 8


def carries_no_opinion(normalised: str) -> bool:
    """True for a greeting, thanks, a wish or purchase context; False for anything that may judge."""
    words = _WORD.findall(normalised)
    if not words:
        return True
    if all(word in FORMULAIC or word.isdigit() for word in words):
        return True
    order = ORDER_VERB.search(normalised)
    # Context ends at its verb («دیشب پیتزا سفارش دادم»); words after it say what went wrong («... نه زیرو»).
    after = _WORD.findall(normalised[order.end():]) if order else []
    return (len(words) <= MAX_CONTEXT_WORDS and order is not None and len(after) <= 1 and not VERDICT.search(normalised)
            and not any(w.startswith(("نمی", "نم")) and len(w) > 4 for w in words))


# Reactions: how the customer feels, not what went wrong («راضی نبودم», «خیلی بد بود»). A theme is never labelled
# by them alone.
REACTION = frozenset((
    "بد", "بدی", "بده", "بدترین", "افتضاح", "افتضاحه", "افتضاحی", "افتضاح‌ترین", "ضعیف", "ضعیفه", "داغون", "مزخرف", "افضاح",
    "راضی", "ناراضی", "نارضایتی", "نبودم", "نبودیم", "نبود", "نیستم", "نیستیم", "نیست", "نشدم", "نشدیم", "شدم", "شدیم", "بود",
    "بودم", "بودیم", "شد", "اصلا", "واقعا", "خیلی", "بسیار", "متاسفم", "متاسفانه", "متاسف", "تاسف", "ناامید", "ناامیدم",
    "ناامیدکننده", "دیگه", "هیچوقت", "هرگز", "اصلن", "کلا", "عالی", "خوب", "خوبی", "نه", "اه", "واقعاً", "انقدر", "اینقدر",
    "افتضاحش", "بدش", "تجربه", "تجربه‌ای", "بار", "دفعه", "اولین", "آخرین", "اخرین",
))


def is_reaction(phrase: str) -> bool:
    """True for a phrase made only of feeling words («خیلی بد بود», «راضی نبودم»): no cause in it."""
    words = _WORD.findall(phrase)
    return bool(words) and all(word in REACTION or word in FORMULAIC for word in words)
