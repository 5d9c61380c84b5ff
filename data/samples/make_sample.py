"""Build bazkhord's shipped sample (`feedback.jsonl` and the held-out `feedback_test.jsonl`).

Every clause and whole comment below was written by hand for bazkhord. Comments are assembled from them
with channel-specific framing and the noise real customers add (Arabic letters, missing half-spaces,
elongation, typos, Latin digits, emoji, PII). One fragment in five, and one whole comment in five, is kept
for the test file only, so the sample's test figure measures generalisation to unseen wording.

Run: .venv/bin/python data/samples/make_sample.py   (after `make install`; deterministic; rewrites both files)
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path

from bazkhord.data.normalise import normalise

HERE = Path(__file__).parent

SEED = 1405
N_POOL = 1300
N_TEST = 280
START = datetime(2026, 5, 1)
DAYS = 184  # May to October

# (aspect, polarity) -> clauses. A prefix "food|" etc. restricts a clause to a product family.
FRAGMENTS: dict[str, dict[str, list[str]]] = {
    "delivery": {
        "positive": [
            "ارسال خیلی سریع بود", "یک روزه به دستم رسید", "زودتر از زمانی که گفته بودن رسید",
            "پیک خیلی مودب و خوش‌برخورد بود", "تحویل به موقع انجام شد", "سفارشم درست سر ساعت رسید",
            "همون روزی که سفارش دادم تحویل گرفتم", "مرسوله با دقت و سریع تحویل داده شد",
            "ارسالتون حرف نداره، حتی جمعه هم آوردن", "پیک قبل از اومدن زنگ زد و هماهنگ کرد",
            "با اینکه شهرستانم دو روزه رسید", "زمان ارسال دقیقا همونی بود که تو سایت نوشته بود",
            "کالا در کوتاه‌ترین زمان ممکن ارسال گردید", "ارسال رایگان بود و سریع هم رسید",
            "راننده با اینکه آسانسور نداشتیم تا دم واحد آورد", "مامور پست خیلی با حوصله بود",
            "کد رهگیری دقیق بود و لحظه به لحظه می‌دونستم بسته کجاست", "تحویل اکسپرس واقعا اکسپرس بود",
            "دو ساعت بعد از ثبت سفارش دم در بود", "پیکتون خیلی آقا بود، دستش درد نکنه",
        ],
        "negative": [
            "ارسال با تاخیر خیلی زیادی انجام شد", "یه هفته دیرتر از موعد رسید", "سه بار زمان تحویل رو عقب انداختن",
            "پیک بدون هماهنگی اومد و چون خونه نبودم برگشت زد", "پیک بی‌ادب بود و جواب سلامم رو هم نداد",
            "با اینکه پول ارسال اکسپرس دادم چهار روز بعد رسید", "وضعیت سفارش سه روزه روی در حال ارسال مونده",
            "بسته رو دم در ساختمون ول کردن و رفتن", "هنوز سفارشم نرسیده و کسی هم جواب نمیده",
            "کد رهگیری پست اصلا کار نمی‌کنه", "پیک گفت خودتون بیاید پایین، اونم طبقه چهارم",
            "سفارش رو به آدرس اشتباه فرستادن", "تحویل با تأخیر قابل توجهی صورت گرفت",
            "زدن تحویل داده شد در حالی که هیچی به دستم نرسیده", "پیک بابت رسوندن ازم پول اضافه گرفت",
            "بازه تحویل ۹ تا ۱۲ بود ولی ساعت ۵ عصر اومدن", "دو تا از اقلام سفارش رو نیاوردن",
            "مامور پست سر کوچه زنگ زد گفت بیا بگیرش", "ده روزه منتظرم، این چه وضع ارسالیه",
            "پیک تلفنی سرم داد زد که چرا دیر اومدی پایین", "سفارش فوری بود ولی یه هفته طول کشید تا برسه",
        ],
        "neutral": [
            "ارسال معمولی بود، نه زود نه دیر", "طبق همون زمان اعلام‌شده رسید", "با پست پیشتاز فرستادن",
            "سه روز کاری طول کشید تا برسه",
        ],
    },
    "price": {
        "positive": [
            "قیمتش نسبت به بازار خیلی مناسب‌تره", "با این قیمت واقعا ارزش خرید داره", "تو حراج گرفتم و خیلی به صرفه شد",
            "ارزون‌ترین جایی بود که پیدا کردم", "به نسبت کیفیتش قیمت منصفانه‌ایه", "ارزشش خیلی بیشتر از پولیه که دادم",
            "با کد تخفیف تقریبا نصف قیمت درومد", "از نظر قیمت رقیب نداره", "قیمت مناسب و منطقی",
            "برای دانشجویی که بودجه‌اش محدوده انتخاب خوبیه", "با این پول بهتر از این پیدا نمیشه",
            "قیمتش از مغازه‌های محلمون کمتر بود", "تخفیف شگفت‌انگیزش واقعی بود",
            "هزینه ارسالش هم نگرفتن که خیلی خوب بود", "به‌صرفه‌ترین خرید امسالم بود",
        ],
        "negative": [
            "قیمتش خیلی بالاست", "دو روز بعد از خرید سیصد تومن ارزون‌تر شد", "گرون‌تر از بازار حساب کردن",
            "اصلا ارزش این پول رو نداره", "تخفیفش فیک بود، اول قیمت رو بردن بالا بعد تخفیف زدن",
            "هزینه ارسالش از خود جنس بیشتر شد", "با این قیمت انتظار خیلی بیشتری داشتم",
            "قیمت‌ها هر روز داره میره بالا، دیگه نمیشه خرید کرد", "مبلغ نهایی با قیمتی که تو سبد بود فرق داشت",
            "حیف پولی که دادم", "قیمت نسبت به کیفیت اصلا منصفانه نیست", "گرونفروشی محضه",
            "چرا باید یه شارژر ساده این‌قدر گرون باشه", "همین رو تو بازار نصف قیمت دیدم",
            "پول زیادی بابتش دادم و پشیمونم",
        ],
        "neutral": ["قیمتش مثل بقیه جاهاست", "قیمتش معقوله، نه ارزون نه گرون", "قیمتش همون قیمت بازاره"],
    },
    "quality": {
        "positive": [
            "کیفیت ساختش فوق‌العاده‌ست", "جنسش خیلی خوبه و محکمه", "از هر نظر بی‌نقصه",
            "چند ماهه استفاده می‌کنم و هیچ مشکلی نداشته", "عملکردش خیلی بهتر از انتظارم بود",
            "کیفیتش واقعا عالیه", "خیلی باکیفیت و خوش‌دسته",
            "electronics|صدای هدفون خیلی شفافه و بیسش عالیه", "electronics|باتریش واقعا خوب شارژ نگه می‌داره",
            "electronics|دوربینش تو نور کم هم عکسای خوبی می‌گیره", "electronics|سرعتش عالیه و اصلا هنگ نمی‌کنه",
            "electronics|صفحه‌نمایشش خیلی روشن و باکیفیته", "electronics|گوشی خیلی روان کار می‌کنه",
            "clothing|پارچه‌اش نرم و باکیفیته و بعد شستشو آب نرفت", "clothing|دوخت‌هاش تمیز و مرتبه",
            "clothing|خیلی راحته، کل روز پام بود و اذیت نشدم", "food|خیلی خوشمزه و تازه بود",
            "food|طعمش عالیه، بچه‌ها عاشقش شدن", "food|کیفیت مواد اولیه‌اش کاملا مشخصه",
            "food|تاریخ تولیدش تازه بود و عطرش عالی", "appliance|بی‌صدا کار می‌کنه و مصرف برقش کمه",
            "appliance|قدرت مکشش عالیه", "appliance|خیلی سریع خنک می‌کنه",
            "cosmetics|بوی خوبی داره و ماندگاریش هم بالاست", "cosmetics|پوستم رو اصلا چرب نمی‌کنه و جذبش سریعه",
        ],
        "negative": [
            "بعد از دو روز خراب شد", "کیفیتش خیلی پایینه", "از همون اول روشن نشد", "جنسش پلاستیکی و بی‌کیفیته",
            "بعد یه هفته استفاده از کار افتاد", "اصلا کیفیت نداره، یه بار مصرفه", "معیوب بود و درست کار نمی‌کرد",
            "electronics|صفحه نمایش پیکسل سوخته داشت", "electronics|شارژرش داغ می‌کنه و بوی سوختگی میده",
            "electronics|صداش خش داره", "electronics|گوشی مدام لگ داره و هنگ می‌کنه",
            "electronics|باتریش نصف روز هم دووم نمیاره", "electronics|دکمه پاورش گیر می‌کنه",
            "clothing|بعد از اولین شستشو رنگش رفت", "clothing|بعد یه هفته زیپش در رفت",
            "clothing|دوختش افتضاحه، نخ‌هاش بیرون زده", "clothing|کفی کفش بعد دو روز جدا شد",
            "food|کیک‌ها بیات بودن", "food|تاریخ انقضاش خیلی نزدیک بود", "food|مزه‌اش تلخ و مونده بود",
            "food|برنجش شکسته و پر از سنگ‌ریزه بود", "appliance|یخچال صدای خیلی بلندی میده",
            "appliance|اصلا خنک نمی‌کنه", "appliance|موتورش بعد یه ماه سوخت",
            "cosmetics|پوستم بهش حساسیت داد و قرمز شد", "cosmetics|بوش خیلی زود می‌پره",
        ],
        "neutral": ["کیفیتش معمولیه، در حد همین قیمت", "نه عالیه نه بد، یه جنس معمولیه", "کیفیتش متوسطه"],
    },
    "packaging": {
        "positive": [
            "بسته‌بندی خیلی شیک و محکم بود", "چند لایه پلاستیک حباب‌دار پیچیده بودن که آسیب نبینه",
            "جعبه سالم و پلمب بود", "بسته‌بندیش عالی بود، معلومه براشون مهمه", "حتی یه کارت تشکر هم گذاشته بودن",
            "بسته‌بندی تمیز و مرتب بود", "داخل کارتن با فوم محافظت شده بود", "بسته بندی خیلی عالی",
            "تخم‌مرغ‌ها با اون بسته‌بندی خوب یکی‌شونم نشکسته بود", "کادوپیچی هم کرده بودن، خیلی قشنگ",
        ],
        "negative": [
            "کارتن کاملا له شده بود", "بسته‌بندی خیلی ضعیف بود", "پلمب جعبه باز شده بود",
            "تو یه نایلون ساده گذاشته بودن بدون هیچ محافظی", "کارتن خیس و پاره بود",
            "شیشه‌اش شکسته بود چون هیچ محافظی نداشت", "در بطری نشتی داشت و همه‌جا رو کثیف کرده بود",
            "روی جعبه پر از خط و خش و چسب‌کاری بود", "بسته بندی افتضاح", "جعبه‌اش داغون و قر شده بود",
            "ظرفش ترک داشت و محتویاتش ریخته بود بیرون",
        ],
        "neutral": ["بسته‌بندی ساده بود", "تو کارتن معمولی فرستادن"],
    },
    "support": {
        "positive": [
            "پشتیبانی خیلی پاسخگو و مودب بودن", "کارشناس پشتیبانی با حوصله مشکلم رو حل کرد",
            "آقای محمدی از واحد پشتیبانی واقعا کمکم کرد", "اپراتور خیلی خوش‌برخورد بود",
            "رفتار کارکنان فروشگاه عالی بود", "مشکلم تو همون تماس اول حل شد", "کارشناس تلفنی کامل راهنماییم کرد",
            "برخوردشون خیلی محترمانه بود", "خانم پشتیبان خیلی صبور بود و همه‌چیز رو توضیح داد",
            "پیگیری‌شون عالی بود، خودشون دوباره زنگ زدن", "پشتیبان چت واقعا وارد بود و دقیق جواب داد",
            "فروشنده خیلی صادق بود و خودش گفت این مدل به کارم نمیاد",
        ],
        "negative": [
            "پشتیبانی هیچ کمکی نکرد", "اپراتور تلفن رو روم قطع کرد", "کارشناس با بی‌حوصلگی جواب داد",
            "هر بار زنگ می‌زنم یه چیز میگن", "برخورد فروشنده خیلی بد بود",
            "فقط میگن پیگیری می‌کنیم و هیچ اتفاقی نمیفته", "جواب پشتیبان کپی‌پیست بود و ربطی به سوالم نداشت",
            "تیکت زدم بدون اینکه جواب بدن بستنش", "کارمند شعبه با لحن طلبکارانه صحبت کرد",
            "تو چت آنلاین فقط ربات جواب میده، آدم واقعی نیست", "مسئول فروشگاه حتی حاضر نشد گوش بده",
            "کارشناس اطلاعات غلط داد و کارم بدتر شد",
        ],
        "neutral": ["با پشتیبانی تماس گرفتم و گفتن بررسی می‌کنن", "کارشناس گفت باید فرم رو پر کنم"],
    },
    "wait_time": {
        "positive": [
            "خیلی سریع جواب دادن", "کمتر از پنج دقیقه تو صف بودم", "تیکتم ظرف یه ساعت جواب داده شد",
            "پاسخگوییشون سریع بود", "بلافاصله به کارشناس وصل شدم", "خیلی زود رسیدگی شد",
            "تو چت آنلاین زیر یه دقیقه جواب گرفتم",
        ],
        "negative": [
            "نیم ساعت پشت خط منتظر موندم", "سه روزه تیکت زدم و هنوز جواب ندادن",
            "هر بار زنگ می‌زنم میگه همه کارشناسان مشغولن", "زمان انتظار تو صف خیلی طولانیه",
            "جواب ایمیلم بعد یه هفته اومد", "تو چت آنلاین ۴۵ دقیقه طول کشید تا یکی جواب بده",
            "تو شعبه یک ساعت و نیم معطل شدم", "خیلی دیر پاسخ میدن", "هنوز منتظر تماس پشتیبانی‌ام",
            "گفتن ۲۴ ساعته تماس می‌گیریم، الان یه هفته گذشته",
        ],
        "neutral": ["حدود ده دقیقه پشت خط بودم", "گفتن تا ۴۸ ساعت جواب میدن"],
    },
    "returns": {
        "positive": [
            "مرجوعی خیلی راحت انجام شد", "پولم رو دو روزه برگردوندن", "گارانتی بدون دردسر عوضش کرد",
            "بدون هیچ سوالی کالا رو پس گرفتن", "تعویض کالا خیلی سریع انجام شد",
            "هزینه مرجوعی رو هم خودشون دادن", "خدمات پس از فروششون واقعا خوبه",
            "گارانتی‌اش واقعی بود و تعمیرش یه هفته‌ای تموم شد",
        ],
        "negative": [
            "درخواست مرجوعی‌ام رو رد کردن", "دو هفته‌ست منتظر برگشت پولم هستم",
            "گارانتی زیر بار نمیره، میگه ضربه خورده", "برای پس دادنش کلی هزینه ازم گرفتن",
            "گفتن مهلت مرجوعی تموم شده در حالی که دو روز بیشتر نگذشته بود",
            "پول رو به جای حسابم به کیف پول برگردوندن و نمیشه برداشتش کرد", "گارانتی دستگاه رو سه ماهه نگه داشته",
            "شرکت گارانتی اصلا تلفن جواب نمیده", "کالای مرجوعی رو تحویل گرفتن ولی هنوز پولی واریز نشده",
            "برای تعویض سایز گفتن باید دوباره هزینه ارسال بدی",
        ],
        "neutral": ["درخواست مرجوعی ثبت کردم و منتظرم", "گارانتیش هجده ماهه است"],
    },
    "app": {
        "positive": [
            "اپلیکیشن خیلی راحت و کاربرپسنده", "سایت سریع و مرتبه", "فیلترهای جستجو خیلی کاربردیه",
            "نسخه جدید اپ خیلی روان‌تر شده", "خرید از اپ خیلی راحته", "رابط کاربری ساده و شیکه",
            "پیگیری سفارش تو اپ خیلی دقیقه", "حالت شب اپ خیلی خوبه",
        ],
        "negative": [
            "اپ مدام کرش می‌کنه", "بعد از آپدیت جدید برنامه باز نمیشه", "سایت موقع ثبت سفارش ارور میده",
            "کد تایید پیامکی نمیاد و نمی‌تونم وارد شم", "سبد خریدم خود به خود خالی میشه",
            "اپلیکیشن خیلی کنده و هنگ می‌کنه", "بعد از به‌روزرسانی دیگه لاگین نمیشه",
            "جستجوی سایت افتضاحه، چیزی که می‌خوام رو پیدا نمی‌کنه",
            "نوتیفیکیشن تبلیغاتی خیلی زیاده و خاموش هم نمیشه", "تو آیفون اپ اصلا نصب نمیشه",
            "صفحه پرداخت تو اپ سفید میشه", "از آپدیت آخر به بعد اپ تو صفحه اول گیر می‌کنه",
        ],
        "neutral": ["نسخه جدید اپ رو نصب کردم", "از طریق سایت سفارش دادم"],
    },
    "payment": {
        "positive": [
            "پرداخت خیلی راحت و سریع انجام شد", "امکان پرداخت قسطی عالیه", "درگاه پرداخت بدون مشکل کار کرد",
            "پرداخت در محل داشتن که برام خیلی خوب بود", "فاکتور رسمی سریع صادر شد",
            "با کیف پول اپ راحت پرداخت کردم",
        ],
        "negative": [
            "پول از حسابم کم شد ولی سفارش ثبت نشد", "دو بار ازم پول کسر کردن", "درگاه پرداخت مدام خطا میده",
            "کد تخفیف موقع پرداخت اعمال نشد", "مبلغ فاکتور با چیزی که پرداخت کردم فرق داره",
            "پرداخت در محل رو بی‌خبر حذف کردن", "هنوز فاکتور رسمی برام صادر نشده",
            "کارمزد اضافه از کارتم کم شد", "پولی که کسر شد بعد ۷۲ ساعت هم برنگشت",
        ],
        "neutral": ["با کارت بانکی پرداخت کردم", "پرداخت رو در محل انجام دادم"],
    },
    "authenticity": {
        "positive": [
            "دقیقا همونی بود که تو عکس‌ها بود", "اصل بود و کد اصالت داشت", "کاملا مطابق توضیحات سایت بود",
            "رنگش دقیقا مثل عکس بود", "اصالتش رو چک کردم، اورجینال بود", "سایزش دقیقا طبق جدول سایز بود",
            "همه مشخصاتش با چیزی که نوشته بودن می‌خوند",
        ],
        "negative": [
            "با عکسش زمین تا آسمون فرق داشت", "جنس تقلبی فرستادن", "رنگش با چیزی که تو سایت بود فرق داشت",
            "نوشته بود اورجینال ولی کپی بود", "مدلش با چیزی که سفارش دادم فرق می‌کرد",
            "سایزش با جدول سایز نمی‌خوند", "گوشی رجیستر نبود در حالی که نوشته بودن رجیستر شده",
            "کالا دست دوم بود و روش جای انگشت بود", "حجمش کمتر از چیزی بود که روی سایت نوشته بودن",
        ],
        "neutral": ["مشخصاتش رو از روی سایت خونده بودم", "همون مدلی بود که سفارش داده بودم"],
    },
}

GENERAL = {
    "positive": [
        "خیلی راضی‌ام", "تجربه خرید خوبی بود", "در کل عالی بود", "دمتون گرم", "پیشنهاد می‌کنم بخرید",
        "حتما دوباره ازتون خرید می‌کنم", "از همه نظر راضی بودم", "ممنون از زحماتتون", "به دوستامم معرفی کردم",
        "از خریدم کاملا راضی هستم", "خوب بود مرسی", "واقعا لذت بردم",
    ],
    "negative": [
        "دیگه ازتون خرید نمی‌کنم", "واقعا ناامید شدم", "اصلا پیشنهاد نمی‌کنم", "تجربه خیلی بدی بود",
        "تا حالا همچین وضعی ندیده بودم", "لطفا رسیدگی کنید", "خیلی شاکی‌ام", "اعصابم خورد شد",
        "از خریدم پشیمونم", "انتظار نداشتم این‌طوری باشه",
    ],
    "neutral": ["ممنون", "با تشکر", "منتظر پاسخ هستم", "لطفا راهنمایی کنید"],
}

OPENERS = {
    "formal": ["با سلام و احترام،", "با سلام،", "احتراما به استحضار می‌رساند", "درود،"],
    "casual": ["سلام", "سلام وقت بخیر", "سلام خسته نباشید", "راستش", "خدایی", "والا", "ببینید", "", "", ""],
}

EMOJI = {"positive": ["😍", "👍", "❤️", "🙏", "👌", "😊"], "negative": ["😡", "👎", "😞", "🤬", "😤"], "mixed": ["🤔", "😐"]}

# Whole comments, written as they are: very short, sarcastic, Finglish, questions, long stories.
WHOLE: list[tuple[str, str, dict[str, str]]] = [
    ("عالی", "positive", {}), ("خوب بود", "positive", {}), ("افتضاح", "negative", {}), ("بد نبود", "positive", {}),
    ("خوب نبود", "negative", {}), ("معمولی", "neutral", {}), ("👌👌", "positive", {}), ("😡😡😡", "negative", {}),
    ("مرسی", "positive", {}), ("نه خوب نه بد", "neutral", {}), ("اصلا راضی نیستم", "negative", {}),
    ("بی‌نظیره", "positive", {}), ("ضعیف", "negative", {}), ("قابل قبول بود", "neutral", {}), ("چرت", "negative", {}),
    ("بد نیست", "neutral", {}), ("عالییییی", "positive", {}), ("اصلا بد نبود، راضی‌ام", "positive", {}),
    ("خوبه ولی عالی نیست", "neutral", {}), ("نخرید", "negative", {}), ("ارزش خرید داره", "positive", {"price": "positive"}),
    ("دستتون درد نکنه واقعا! فقط دو هفته طول کشید تا برسه", "negative", {"delivery": "negative"}),
    ("چه سرعتی! یه ماه بعد رسید 👏", "negative", {"delivery": "negative"}),
    ("واقعا ممنون که گوشی شکسته فرستادید، روزم رو ساختید", "negative", {"quality": "negative"}),
    ("آفرین به این پشتیبانی که فقط بلده بگه پیگیری می‌کنیم", "negative", {"support": "negative"}),
    ("عجب پشتیبانی سریعی! فقط سه ساعت پشت خط بودم", "negative", {"wait_time": "negative"}),
    ("خیلی ممنون که پولمو بعد دو ماه برگردوندید، واقعا سرعت عمل دارید", "negative", {"returns": "negative"}),
    ("به به، چه اپی! هر بار باز می‌کنم می‌بنده خودشو", "negative", {"app": "negative"}),
    ("دمتون گرم که به جای کفش ۴۲ سایز ۳۸ فرستادید، لابد باید پامو کوچیک کنم", "negative", {"authenticity": "negative"}),
    ("kheili aali bood mamnoon", "positive", {}), ("ersal kheili dir bood", "negative", {"delivery": "negative"}),
    ("keyfiatesh khoob nabood", "negative", {"quality": "negative"}), ("app kar nemikone", "negative", {"app": "negative"}),
    ("poshtibani javab nemide", "negative", {"support": "negative"}), ("gheymatesh monasebe", "positive", {"price": "positive"}),
    ("jensesh asl bood merci", "positive", {"authenticity": "positive"}),
    ("bad nabood vali gerun bood", "mixed", {"price": "negative"}), ("salam sefaresham kojast?", "neutral", {"delivery": "neutral"}),
    ("packaging kheili bad bood jabe leh shode bood", "negative", {"packaging": "negative"}),
    ("کی دوباره موجود میشه؟", "neutral", {}), ("این مدل گارانتی داره؟", "neutral", {"returns": "neutral"}),
    ("سفارشم کجاست؟ لطفا کد رهگیری رو بفرستید", "neutral", {"delivery": "neutral"}),
    ("لطفا فاکتور رسمی برام ارسال کنید", "neutral", {"payment": "neutral"}),
    ("ساعت کاری پشتیبانی تا کیه؟", "neutral", {"support": "neutral"}),
    ("رنگ مشکیش هم موجود میشه؟", "neutral", {}), ("آیا امکان پرداخت اقساطی هست؟", "neutral", {"payment": "neutral"}),
    ("تو کرج هم ارسال دارید؟", "neutral", {"delivery": "neutral"}),
    (
        "با سلام، احتراما به استحضار می‌رساند کالای خریداری‌شده معیوب بوده و تاکنون پاسخی از سوی واحد پشتیبانی "
        "دریافت نگردیده است. خواهشمند است دستور پیگیری صادر فرمایید.",
        "negative", {"quality": "negative", "wait_time": "negative"},
    ),
    (
        "من سه تا سفارش همزمان داشتم. دوتاش سالم و سریع رسید ولی سومی که از همه گرون‌تر بود گم شد. پشتیبانی "
        "هم اولش گفت تقصیر پسته، بعد گفت فروشنده، آخرشم هیچکس مسئولیت قبول نکرد.",
        "negative", {"delivery": "negative", "support": "negative"},
    ),
    (
        "گوشی رو برای مادرم خریدم. راه‌اندازیش یکم سخت بود ولی کارشناس تلفنی قدم به قدم راهنمایی کرد. "
        "خود گوشی هم عالیه و مادرم خیلی راضیه.",
        "positive", {"support": "positive", "quality": "positive"},
    ),
    (
        "قبلا همیشه از شما خرید می‌کردم چون ارسالتون سریع بود. ولی این چند ماه اخیر هر سفارشی دادم با تاخیر رسید "
        "و هزینه ارسال هم بیشتر شده. متاسفم ولی دارم میرم سراغ جای دیگه.",
        "negative", {"delivery": "negative", "price": "negative"},
    ),
    (
        "کفش رو سفارش دادم، سایز ۴۱. دقیقا اندازه بود و جنسش هم چرم طبیعیه. فقط بندهاش یکم کوتاهه که مهم نیست.",
        "positive", {"authenticity": "positive", "quality": "positive"},
    ),
    (
        "لپ‌تاپ سالم رسید و بسته‌بندیش هم خوب بود، ولی بعد از یک ماه کیبوردش چندتا دکمه‌اش از کار افتاد. "
        "بردم گارانتی، گفتن سه هفته طول می‌کشه.",
        "mixed", {"packaging": "positive", "quality": "negative", "returns": "negative"},
    ),
    (
        "سلام. شماره سفارشم رو چند بار تو چت دادم، هر بار یه کارشناس جدید میاد و از اول می‌پرسه. "
        "کل ماجرا یک ساعت طول کشید و آخرش هم مشکل حل نشد.",
        "negative", {"support": "negative", "wait_time": "negative"},
    ),
    ("پول دادم، کالا نیومد، پشتیبانی جواب نمیده. همین.", "negative", {"delivery": "negative", "support": "negative"}),
    ("یخچال رو نصاب آورد و نصب کرد، خیلی تمیز و بااخلاق بود. یخچالم تا الان عالی کار کرده.", "positive",
     {"support": "positive", "quality": "positive"}),
    ("عسلش طبیعی بود ولی تو ظرف پلاستیکی فرستادن و درش هم شل بود", "mixed",
     {"quality": "positive", "packaging": "negative"}),
    ("نسبت به قیمتش بد نیست ولی انتظار معجزه نداشته باشید", "neutral", {"price": "neutral", "quality": "neutral"}),
    ("نمیدونم چرا همه ازش تعریف کردن، من که چیز خاصی ندیدم", "negative", {}),
    ("بار اولم بود از اپ خرید می‌کردم، همه‌چیز راحت بود و زود هم رسید", "positive",
     {"app": "positive", "delivery": "positive"}),
    ("واقعا نمیدونم چی بگم، هم خوب بود هم بد", "mixed", {}),
    ("سلام، سفارشم امروز رسید. مرسی", "positive", {"delivery": "neutral"}),
    ("جنسش خوب نیست ولی با این قیمت توقعی هم نبود", "mixed", {"quality": "negative", "price": "positive"}),
    ("ممنون بابت پیگیری، مشکلم حل شد", "positive", {"support": "positive"}),
    ("این چه وضعشه؟؟؟ سه بار زنگ زدم!!!", "negative", {"wait_time": "negative"}),
    ("تا الان ۵ بار ازتون خرید کردم هیچ بار مشکل نداشتم", "positive", {}),
    ("کد تخفیف رو زدم نامعتبر بود، با پشتیبانی چت کردم سریع یه کد جدید دادن", "mixed",
     {"payment": "negative", "support": "positive"}),
    ("مثل همیشه خوب", "positive", {}), ("خیلی هم عالی نبود", "negative", {}), ("بهتر از این نمیشه", "positive", {}),
    ("ای بد نبود", "neutral", {}), ("باید بیشتر استفاده کنم تا نظر بدم", "neutral", {}),
    ("گوشی اصل بود ولی کارتن رو باز کرده بودن و محافظ صفحه نداشت", "mixed",
     {"authenticity": "positive", "packaging": "negative"}),
    ("ساعت هوشمندش بعد آپدیت دیگه به گوشیم وصل نمیشه", "negative", {"quality": "negative"}),
]

# A theme outside the taxonomy that starts late in the period (for theme discovery): the loyalty club.
EMERGING = [
    "امتیازهای باشگاه مشتریانم بی‌دلیل صفر شد", "جایزه‌های باشگاه مشتریان همه ناموجوده",
    "امتیاز خریدهام تو باشگاه مشتریان ثبت نمیشه", "کد هدیه باشگاه مشتریان کار نمی‌کنه",
    "باشگاه مشتریان رو عوض کردید و دیگه با امتیازها هیچی نمیشه گرفت", "امتیاز باشگاهم منقضی شد و خبر ندادید",
    "سطح طلایی باشگاه مشتریانم بدون دلیل برگشت به برنزی", "از وقتی باشگاه مشتریان عوض شده هیچ تخفیفی نمی‌گیرم",
    "تو باشگاه مشتریان هرچی امتیاز جمع کردم پرید", "امتیازهای باشگاه رو نمیشه خرج کرد، همه‌ش خطا میده",
]

PRODUCTS = {
    "electronics": ["گوشی موبایل", "هدفون بی‌سیم", "لپ‌تاپ", "ساعت هوشمند", "پاوربانک", "تبلت"],
    "clothing": ["کفش ورزشی", "مانتو", "کاپشن", "شلوار جین"],
    "food": ["عسل", "روغن زیتون", "برنج", "قهوه", "خرما"],
    "appliance": ["یخچال", "جاروبرقی", "ماشین لباسشویی", "اتو"],
    "cosmetics": ["کرم ضدآفتاب", "عطر", "شامپو"],
}

CHANNEL_WEIGHTS = {"app_review": 0.25, "support_chat": 0.2, "ticket": 0.12, "delivery": 0.15, "survey": 0.18, "sms": 0.1}
# Which aspects each channel tends to talk about.
CHANNEL_ASPECTS = {
    "app_review": {"app": 4, "delivery": 2, "price": 2, "quality": 2, "payment": 2, "support": 1, "authenticity": 1},
    "support_chat": {"support": 4, "wait_time": 3, "returns": 3, "payment": 2, "delivery": 2, "quality": 1},
    "ticket": {"returns": 3, "quality": 3, "payment": 2, "support": 2, "wait_time": 2, "authenticity": 2},
    "delivery": {"delivery": 5, "packaging": 4, "quality": 1, "authenticity": 1},
    "survey": {"quality": 3, "price": 3, "delivery": 2, "packaging": 2, "support": 1, "authenticity": 2, "returns": 1},
    "sms": {"delivery": 3, "support": 2, "wait_time": 2, "quality": 2, "price": 1},
}
SEGMENTS = ["new", "returning", "vip"]
ARABIC = str.maketrans({"ی": "ي", "ک": "ك"})


def held_out(items: list[str] | list[tuple[str, str, dict[str, str]]]) -> tuple[list, list]:  # type: ignore[type-arg]
    """Every fifth item is for the test file only."""
    return [x for i, x in enumerate(items) if i % 5 != 4], [x for i, x in enumerate(items) if i % 5 == 4]


def pools(test: bool) -> tuple[dict[str, dict[str, list[str]]], dict[str, list[str]], list, list[str]]:  # type: ignore[type-arg]
    pick = 1 if test else 0
    fragments = {a: {p: held_out(v)[pick] for p, v in by_pol.items()} for a, by_pol in FRAGMENTS.items()}
    general = {p: held_out(v)[pick] for p, v in GENERAL.items()}
    return fragments, general, held_out(WHOLE)[pick], held_out(EMERGING)[pick]


def weighted(rng: random.Random, weights: dict[str, float] | dict[str, int]) -> str:
    keys = list(weights)
    return rng.choices(keys, weights=[float(weights[k]) for k in keys])[0]


def add_noise(rng: random.Random, text: str) -> str:
    if rng.random() < 0.15:
        text = text.translate(ARABIC)
    if rng.random() < 0.3:
        text = text.replace("\u200c", rng.choice([" ", ""]))
    if rng.random() < 0.08:
        for word, long in (("خیلی", "خیلیییی"), ("عالی", "عاااالی"), ("بد", "بددد"), ("واقعا", "واقعاااا")):
            if word in text:
                text = text.replace(word, long, 1)
                break
    if rng.random() < 0.06:
        words = text.split(" ")
        candidates = [i for i, w in enumerate(words) if len(w) >= 5]
        if candidates:
            i = rng.choice(candidates)
            j = rng.randrange(1, len(words[i]) - 1)
            words[i] = words[i][:j] + words[i][j + 1 :]
            text = " ".join(words)
    if rng.random() < 0.5:
        text = text.translate(str.maketrans("۰۱۲۳۴۵۶۷۸۹", "0123456789"))
    return text


def pii_line(rng: random.Random) -> str:
    phone = "09" + "".join(rng.choice("0123456789") for _ in range(9))
    order = "".join(rng.choice("0123456789") for _ in range(8))
    return rng.choice([
        f"شماره سفارش {order}",
        f"شماره تماسم {phone} هست",
        f"لطفا با {phone} تماس بگیرید",
        "ایمیلم reza.karimi" + str(rng.randint(10, 99)) + "@gmail.com هست",
        "شماره کارتم برای برگشت پول 6037 9918 " + str(rng.randint(1000, 9999)) + " " + str(rng.randint(1000, 9999)),
        "شبا IR" + "".join(rng.choice("0123456789") for _ in range(24)),
    ])


def overall(aspects: dict[str, str], general: str | None) -> str:
    polar = {p for p in aspects.values() if p in ("positive", "negative")}
    if general in ("positive", "negative"):
        polar.add(general)
    if polar == {"positive", "negative"}:
        return "mixed"
    if polar:
        return polar.pop()
    return "neutral"


def join(rng: random.Random, clauses: list[tuple[str, str]]) -> str:
    text = clauses[0][0]
    for (clause, polarity), (_, previous) in zip(clauses[1:], clauses[:-1], strict=True):
        if {polarity, previous} == {"positive", "negative"}:
            text += rng.choice([" ولی ", " اما ", "، ولی ", ". ولی ", "، البته ", " ولی خب "]) + clause
        else:
            text += rng.choice([" و ", "، ", ". ", "، ضمنا ", " و تازه ", "، همچنین "]) + clause
    return text


def compose(rng: random.Random, channel: str, fragments: dict[str, dict[str, list[str]]], general: dict[str, list[str]],
            family: str, product: str, tone: str) -> tuple[str, dict[str, str], str]:
    n_aspects = rng.choices([1, 2, 3], weights=[5, 4, 1])[0]
    weights = dict(CHANNEL_ASPECTS[channel])
    chosen: list[str] = []
    while len(chosen) < n_aspects:
        aspect = weighted(rng, weights)
        weights.pop(aspect)
        chosen.append(aspect)
    aspects: dict[str, str] = {}
    clauses: list[tuple[str, str]] = []
    for aspect in chosen:
        polarity = tone if tone != "mixed" else rng.choice(["positive", "negative"])
        if rng.random() < 0.07:
            polarity = "neutral"
        options = [f.split("|", 1)[-1] for f in fragments[aspect][polarity] if "|" not in f or f.startswith(family + "|")]
        if not options:
            continue
        aspects[aspect] = polarity
        clauses.append((rng.choice(options), polarity))
    if tone == "mixed" and len({p for p in aspects.values()} & {"positive", "negative"}) < 2 and len(clauses) >= 2:
        # A mixed comment needs both sides: flip the last clause.
        last = list(aspects)[-1]
        flipped = "positive" if aspects[last] == "negative" else "negative"
        options = [f.split("|", 1)[-1] for f in fragments[last][flipped] if "|" not in f or f.startswith(family + "|")]
        if options:
            aspects[last] = flipped
            clauses[-1] = (rng.choice(options), flipped)
    if not clauses:
        side = "negative" if tone == "mixed" else tone
        return rng.choice(general[side]), {}, side
    rng.shuffle(clauses)
    text = join(rng, clauses)

    if rng.random() < 0.3:
        text = rng.choice([f"{product} رو خریدم، ", f"این {product} رو هفته پیش گرفتم. ", f"بابت {product}: ",
                           f"{product} سفارش داده بودم، "]) + text
    general_tone: str | None = None
    if rng.random() < 0.35:
        side = overall(aspects, None)
        if side in ("positive", "negative") and general[side]:
            general_tone = side
            text += rng.choice([". ", "، ", " "]) + rng.choice(general[side])
        elif general["neutral"]:
            text += ". " + rng.choice(general["neutral"])
    register = "formal" if channel == "ticket" else "casual"
    opener = rng.choice(OPENERS[register]) if channel in ("support_chat", "ticket", "sms") or rng.random() < 0.2 else ""
    if opener:
        text = f"{opener} {text}"
    if channel in ("support_chat", "ticket") and rng.random() < 0.3:
        text += ". " + pii_line(rng)
    return text, aspects, overall(aspects, general_tone)


def make(n: int, test: bool, seed: int, used: set[str]) -> list[dict[str, object]]:
    rng = random.Random(seed)
    fragments, general, whole, emerging = pools(test)
    rows: list[dict[str, object]] = []
    while len(rows) < n:
        channel = weighted(rng, CHANNEL_WEIGHTS)
        family = rng.choice(list(PRODUCTS))
        product = rng.choice(PRODUCTS[family])
        day = rng.randrange(DAYS)
        created = START + timedelta(days=day, minutes=rng.randrange(24 * 60))
        roll = rng.random()
        if roll < 0.16:
            text, sentiment, aspects = rng.choice(whole)
            aspects = dict(aspects)
        elif roll < 0.19 or (day > DAYS - 21 and roll < 0.35):
            text, sentiment, aspects = rng.choice(emerging), "negative", {}
            if rng.random() < 0.5:
                text = rng.choice(["سلام ", "", "یه مشکلی هست: "]) + text + rng.choice(["", "!", ". لطفا درستش کنید"])
        else:
            tone = rng.choices(["positive", "negative", "mixed"], weights=[4, 5, 2])[0]
            if channel == "support_chat":
                tone = rng.choices(["positive", "negative", "mixed"], weights=[2, 6, 2])[0]
            if day > DAYS - 10 and rng.random() < 0.55:
                # The late-period app update went badly: a rising app theme.
                text, sentiment, aspects = rng.choice(fragments["app"]["negative"]), "negative", {"app": "negative"}
            else:
                text, aspects, sentiment = compose(rng, channel, fragments, general, family, product, tone)
        if rng.random() < 0.12 and sentiment in EMOJI:
            text += " " + rng.choice(EMOJI[sentiment]) * rng.choice([1, 1, 2, 3])
        text = add_noise(rng, text)
        key = normalise(text)  # texts that differ only by noise count as one
        if key in used:
            continue
        used.add(key)
        row: dict[str, object] = {
            "id": f"{'t' if test else 's'}-{len(rows) + 1:05d}",
            "text": text,
            "channel": channel,
            "created_at": created.isoformat(timespec="minutes"),
            "product": product,
            "segment": rng.choices(SEGMENTS, weights=[3, 6, 1])[0],
            "sentiment": sentiment,
            "aspects": aspects,
        }
        score = {"positive": 1.0, "neutral": 0.55, "mixed": 0.45, "negative": 0.1}[sentiment]
        if channel == "app_review":
            row["rating"] = max(1, min(5, round(1 + 4 * score + rng.uniform(-0.7, 0.7))))
        if channel == "survey":
            row["nps"] = max(0, min(10, round(10 * score + rng.uniform(-1.5, 1.5))))
        rows.append(row)
    rows.sort(key=lambda r: str(r["created_at"]))
    return rows


def write(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    used: set[str] = set()  # shared, so no test comment repeats a training one
    pool = make(N_POOL, test=False, seed=SEED, used=used)
    test = make(N_TEST, test=True, seed=SEED + 1, used=used)
    write(HERE / "feedback.jsonl", pool)
    write(HERE / "feedback_test.jsonl", test)
    print(f"wrote {len(pool)} + {len(test)} comments")


if __name__ == "__main__":
    main()
