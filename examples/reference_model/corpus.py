"""Offline text corpus: varied English sentences with their entities, generated from a seed.

Families: general sentences from a small phrase grammar, dictation, voice commands, names, numbers, dates,
times, money, addresses, phone numbers, questions, narrative, formal speech. Numbers are written as words so that
every engine reads the transcript the same way. The jfk.wav text is evaluation-only: :func:`leaks_eval_text`
rejects any sentence sharing a 5-word sequence with it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from .resources import JFK_TEXT

FIRST = ("James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard Susan Joseph "
         "Jessica Thomas Sarah Charles Karen Daniel Lisa Matthew Nancy Anthony Betty Mark Sandra Donald Ashley "
         "Steven Emily Paul Kimberly Andrew Donna Joshua Michelle Kevin Carol Brian Amanda George Melissa Timothy "
         "Deborah Ronald Stephanie Jason Rebecca Ryan Laura Jacob Helen Gary Sharon Nicholas Cynthia Eric Kathleen "
         "Jonathan Amy Larry Angela Justin Anna Scott Ruth Brandon Brenda Raymond Pamela Samuel Nicole Gregory "
         "Katherine Alexander Samantha Patrick Christine Jack Emma Dennis Catherine Jerry Debra Tyler Rachel Aaron "
         "Carolyn Jose Janet Adam Maria Nathan Olivia Henry Heather Zachary Diane Peter Julie Kyle Joyce Noah "
         "Victoria Ethan Kelly Jeremy Christina Walter Lauren Christian Joan Keith Evelyn Roger Judith Terry Megan "
         "Austin Andrea Sean Cheryl Gerald Hannah Carl Jacqueline Harold Martha Dylan Madison Arthur Teresa Lawrence "
         "Gloria Jordan Sara Jesse Janice Bryan Ann Billy Kathryn Bruce Abigail Gabriel Sophia Joe Frances Logan "
         "Jean Alan Alice Juan Judy Albert Isabella Willie Julia Elijah Grace Wayne Amber Randy Denise Vincent "
         "Danielle Mason Marilyn Roy Beverly Ralph Charlotte Bobby Natalie Russell Theresa Bradley Diana Philip "
         "Brittany Eugene Doris Priya Wei Mohammed Aisha Hiroshi Yuki Carlos Sofia Ahmed Fatima Raj Mei Olga Ivan "
         "Kwame Amara Diego Lucia Pierre Chloe Hans Ingrid Omar Leila Arjun Ananya Chen Mateo Freya").split()
LAST = ("Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez Wilson "
        "Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark Ramirez Lewis "
        "Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall "
        "Rivera Campbell Mitchell Carter Roberts Patel Kim Chen Singh Murphy Cook Rogers Morgan Peterson Cooper "
        "Reed Bailey Bell Gomez Kelly Howard Ward Cox Diaz Richardson Wood Watson Brooks Bennett Gray James Reyes "
        "Cruz Hughes Price Myers Long Foster Sanders Ross Morales Powell Sullivan Russell Ortiz Jenkins Gutierrez "
        "Perry Butler Barnes Fisher Henderson Coleman Simmons Patterson Jordan Reynolds Hamilton Graham Wallace "
        "Okafor Tanaka Yamamoto Kowalski Novak Schmidt Dubois Rossi Larsen Ivanova Haddad Mensah Kapoor Zhang "
        "Olsen Fernandes Silva Costa Nakamura Horvat Lindqvist Byrne Gallagher Oconnor Fitzgerald").split()
CITIES = ("Boston Chicago Denver Seattle Portland Austin Dallas Houston Phoenix Atlanta Miami Orlando Nashville "
          "Memphis Detroit Cleveland Pittsburgh Philadelphia Baltimore Richmond Charlotte Raleigh Omaha Tulsa "
          "Albuquerque Sacramento Oakland Fresno Tucson Milwaukee Minneapolis Saint_Louis Kansas_City Indianapolis "
          "Columbus Cincinnati Louisville Buffalo Rochester Hartford Providence London Paris Berlin Madrid Rome "
          "Lisbon Dublin Vienna Prague Warsaw Oslo Stockholm Helsinki Copenhagen Amsterdam Brussels Zurich Geneva "
          "Toronto Montreal Vancouver Sydney Melbourne Auckland Tokyo Osaka Seoul Singapore Mumbai Delhi Nairobi "
          "Lagos Cairo Johannesburg Lima Santiago Bogota Mexico_City").split()
CITIES = [c.replace("_", " ") for c in CITIES]
COMPANIES = ("Acme Globex Initech Umbrella Stark Wayne Hooli Vandelay Soylent Tyrell Cyberdyne Aperture Wonka "
             "Gringotts Oscorp Pied_Piper Dunder_Mifflin Blue_Harbor Northwind Contoso Fabrikam Litware Tailspin "
             "Proseware Lucerne Adventure_Works Woodgrove Alpine_Ski Coho_Vineyard Fourth_Coffee Margie_Travel "
             "Nimbus Zenith Vertex Quantum_Labs Silverline Redwood Brightpath Clearwater Summit").split()
COMPANIES = [c.replace("_", " ") for c in COMPANIES]
PRODUCTS = ("Nimbus Pro|Zephyr X|Aurora Max|Falcon Mini|Orion Air|Titan Plus|Vega Lite|Nova Edge|Pulse Two|"
            "Echo Studio|Atlas Prime|Helix One|Quasar Go|Sierra Flex|Comet Duo|Lumen Ultra|Vortex Neo|Cobalt Nine|"
            "Onyx Slim|Polaris Jet").split("|")
STREETS = ("Main Oak Maple Cedar Elm Pine Washington Lake Hill Park Sunset Highland River Church Mill Spring "
           "Chestnut Walnut Willow Jefferson Lincoln Madison Franklin Cherry Birch Meadow Forest Valley").split()
ST_TYPES = "Street Avenue Road Lane Drive Boulevard Court Place Way Terrace".split()
MONTHS = "January February March April May June July August September October November December".split()
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen " \
       "seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
ORD = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth", "nine": "ninth",
       "twelve": "twelfth"}

NOUNS = ("report letter meeting project garden kitchen window river mountain village market teacher doctor "
         "student farmer engineer painter musician driver neighbor family child friend company government "
         "library museum hospital station airport bridge road forest ocean island city country street house "
         "computer phone camera picture song story book newspaper message problem question answer idea plan "
         "decision budget contract schedule weather storm winter summer morning evening breakfast dinner coffee "
         "bread apple orange bicycle train bus car boat plane ticket package box door key table chair bed "
         "blanket jacket shoe hat glass bottle cup plate knife garden flower tree bird dog cat horse fish "
         "engine machine tool light lamp clock mirror wall floor roof stairs office factory shop bank school "
         "university court army team game match race lesson exam course class language history science music "
         "art film show concert festival holiday journey voyage mission experiment discovery invention").split()
ADJ = ("old new small large quiet loud bright dark warm cold early late quick slow simple difficult important "
       "strange familiar beautiful ugly heavy light empty full busy lazy careful careless honest clever tired "
       "happy sad angry calm gentle rough smooth soft hard clean dirty cheap expensive rare common modern ancient "
       "local foreign private public green blue red yellow white black golden silver wooden narrow wide deep "
       "shallow long short strong weak young brave proud nervous curious patient famous hidden open broken").split()
VERBS_T = ("found lost bought sold built painted cleaned opened closed carried moved fixed broke wrote read "
           "signed checked visited watched noticed described explained answered ordered cooked washed dropped "
           "packed sent received borrowed returned repaired replaced designed tested measured counted collected "
           "studied followed ignored remembered forgot finished started planned cancelled approved rejected").split()
VERBS_I = ("arrived left waited laughed smiled slept worked rested stopped continued disappeared returned "
           "complained agreed wondered hesitated traveled listened whispered shouted danced sang").split()
ADV = ("quickly slowly carefully quietly suddenly finally eventually already again together outside upstairs "
       "yesterday today tomorrow recently often rarely always never sometimes early late soon").split()
PREP = "near behind under above beside inside outside across through around after before during without".split()
SUBJ = ("I you we they he she my brother my sister our neighbor the manager the driver the children the teacher "
        "the old man the young woman everyone nobody somebody the committee the crew the captain the nurse "
        "the students my parents her friend his boss the visitors").split(" ")
SUBJ = "I|you|we|they|he|she|my brother|my sister|our neighbor|the manager|the driver|the children|the teacher|" \
       "the old man|the young woman|everyone|nobody|somebody|the committee|the crew|the captain|the nurse|" \
       "the students|my parents|her friend|his boss|the visitors".split("|")
CONJ = "because|although|while|when|after|before|until|since|so|but|and".split("|")


def num_words(n: int) -> str:
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else "-" + ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return ONES[n // 100] + " hundred" + ("" if rest == 0 else " and " + num_words(rest))
    if n < 1_000_000:
        rest = n % 1000
        return num_words(n // 1000) + " thousand" + ("" if rest == 0 else (" and " if rest < 100 else " ") + num_words(rest))
    rest = n % 1_000_000
    return num_words(n // 1_000_000) + " million" + ("" if rest == 0 else " " + num_words(rest))


def ordinal(n: int) -> str:
    w = num_words(n)
    head, sep, last = w.rpartition("-") if "-" in w else w.rpartition(" ")
    if last in ORD:
        last = ORD[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last = last + "th"
    return head + sep + last


def year_words(y: int) -> str:
    if 2000 <= y < 2010:
        return num_words(y)
    hi, lo = divmod(y, 100)
    return num_words(hi) + " " + ("hundred" if lo == 0 else ("oh " + ONES[lo] if lo < 10 else num_words(lo)))


@dataclass
class Sentence:
    text: str  # transcript as written (also the TTS input)
    entities: list[str] = field(default_factory=list)  # spans a hint could name (names, places, products)
    family: str = ""


class CorpusGen:
    def __init__(self, seed: int):
        self.r = np.random.default_rng(seed)

    def c(self, seq):
        return seq[int(self.r.integers(len(seq)))]

    def name(self) -> str:
        return f"{self.c(FIRST)} {self.c(LAST)}" if self.r.random() < 0.7 else self.c(FIRST)

    def np_(self) -> str:
        det = self.c(["the", "a", "my", "our", "their", "this", "that", "every", "another", "her", "his"])
        adj = (self.c(ADJ) + " ") if self.r.random() < 0.6 else ""
        n = self.c(NOUNS)
        if det == "a" and (adj or n)[0] in "aeiou":
            det = "an"
        return f"{det} {adj}{n}"

    def clause(self) -> str:
        s = self.c(SUBJ)
        if self.r.random() < 0.6:
            out = f"{s} {self.c(VERBS_T)} {self.np_()}"
        else:
            out = f"{s} {self.c(VERBS_I)}"
        if self.r.random() < 0.5:
            out += f" {self.c(PREP)} {self.np_()}"
        if self.r.random() < 0.35:
            out += f" {self.c(ADV)}"
        return out

    def general(self) -> Sentence:
        t = self.clause()
        if self.r.random() < 0.45:
            t += f" {self.c(CONJ)} {self.clause()}"
        return Sentence(_cap(t) + self.c([".", ".", ".", "!"]), family="general")

    def question(self) -> Sentence:
        w = self.c(["Where did", "Why did", "When did", "How did", "Did", "What did"])
        s = self.c(SUBJ)
        if s == "I":
            s = "you"
        v = self.c(VERBS_T)
        base = _BASE.get(v) or (v[:-1] if v[:-1] in _E_BASE else v[:-2])
        return Sentence(_cap(f"{w} {s} {base} {self.np_()}") + "?", family="question")

    def dictation(self) -> Sentence:
        greet = self.c(["Dear", "Hi", "Hello", "Good morning"])
        n = self.name()
        body = self.c([
            f"{greet} {n}, thank you for your {self.c(NOUNS)}, I will reply by {self.c(DAYS)}.",
            f"Note to self: call {n} about the {self.c(NOUNS)} before {self.c(DAYS)}.",
            f"Please remind {n} that the {self.c(NOUNS)} is due on {self.c(DAYS)} morning.",
            f"Minutes of the meeting: {n} presented the {self.c(ADJ)} {self.c(NOUNS)} and everyone agreed.",
            f"{greet} team, the {self.c(NOUNS)} review moves to {self.c(DAYS)} at {self.time_()}.",
            f"Tell {n} I am running {num_words(int(self.r.integers(5, 40)))} minutes late.",
        ])
        return Sentence(body, [n], "dictation")

    def command(self) -> Sentence:
        n, city, prod = self.name(), self.c(CITIES), self.c(PRODUCTS)
        opts = [
            (f"Call {n} on speaker.", [n]),
            (f"Send a message to {n} saying I will be there in {num_words(int(self.r.integers(2, 60)))} minutes.", [n]),
            (f"Set a timer for {num_words(int(self.r.integers(1, 90)))} minutes.", []),
            (f"Set an alarm for {self.time_()} tomorrow.", []),
            (f"What is the weather like in {city} this {self.c(['morning', 'weekend', 'afternoon', 'evening'])}?", [city]),
            (f"Navigate to {self.address()}.", []),
            (f"Play some {self.c(['jazz', 'classical music', 'rock', 'folk songs', 'podcasts', 'news'])} in the {self.c(['kitchen', 'living room', 'car', 'bedroom'])}.", []),
            (f"Turn {self.c(['on', 'off'])} the {self.c(['lights', 'heating', 'fan', 'television', 'radio'])} in the {self.c(['hallway', 'office', 'bedroom', 'garage'])}.", []),
            (f"Order two more {prod} units for the {city} office.", [prod, city]),
            (f"Book a flight to {city} on {self.date()}.", [city]),
            (f"Add {self.c(NOUNS)} and {self.c(NOUNS)} to my shopping list.", []),
            (f"Remind me to email {n} about the {prod} launch.", [n, prod]),
        ]
        t, e = opts[int(self.r.integers(len(opts)))]
        return Sentence(t, e, "command")

    def time_(self) -> str:
        h = int(self.r.integers(1, 13))
        m = self.c([0, 0, 15, 30, 45, 5, 10, 20, 40, 50])
        if m == 0:
            return f"{num_words(h)} {self.c(['o clock', 'a m', 'p m'])}".replace("o clock", "o'clock")
        if m == 30 and self.r.random() < 0.5:
            return f"half past {num_words(h)}"
        if m == 15 and self.r.random() < 0.5:
            return f"a quarter past {num_words(h)}"
        return f"{num_words(h)} {('oh ' + ONES[m]) if m < 10 else num_words(m)}"

    def date(self) -> str:
        d, mth = int(self.r.integers(1, 29)), self.c(MONTHS)
        if self.r.random() < 0.5:
            return f"{mth} {ordinal(d)}"
        return f"the {ordinal(d)} of {mth}"

    def address(self) -> str:
        return f"{num_words(int(self.r.integers(1, 999)))} {self.c(STREETS)} {self.c(ST_TYPES)}"

    def numbers(self) -> Sentence:
        n, city = self.name(), self.c(CITIES)
        opts = [
            (f"The total comes to {num_words(int(self.r.integers(2, 999)))} dollars and {num_words(int(self.r.integers(1, 99)))} cents.", []),
            (f"My phone number is {' '.join(ONES[int(d)] for d in self.r.integers(0, 10, 7))}.", []),
            (f"The meeting is on {self.c(DAYS)}, {self.date()}, at {self.time_()}.", []),
            (f"{n} was born in {year_words(int(self.r.integers(1930, 2010)))}.", [n]),
            (f"The population of {city} is about {num_words(int(self.r.integers(2, 900)))} thousand people.", [city]),
            (f"Flight {num_words(int(self.r.integers(100, 999)))} to {city} leaves from gate {num_words(int(self.r.integers(1, 60)))}.", [city]),
            (f"Please send the package to {self.address()}, {city}.", [city]),
            (f"The temperature dropped to minus {num_words(int(self.r.integers(1, 30)))} degrees last night.", []),
            (f"Our sales grew by {num_words(int(self.r.integers(2, 60)))} percent in {year_words(int(self.r.integers(1990, 2026)))}.", []),
            (f"Room {num_words(int(self.r.integers(100, 999)))} is on the {ordinal(int(self.r.integers(1, 30)))} floor.", []),
        ]
        t, e = opts[int(self.r.integers(len(opts)))]
        return Sentence(t, e, "numbers")

    def names(self) -> Sentence:
        n, m, city, co, prod = self.name(), self.name(), self.c(CITIES), self.c(COMPANIES), self.c(PRODUCTS)
        opts = [
            (f"{n} moved to {city} to work for {co}.", [n, city, co]),
            (f"I had lunch with {n} and {m} yesterday.", [n, m]),
            (f"The new {prod} from {co} goes on sale next {self.c(DAYS)}.", [prod, co]),
            (f"{n} is the new head of sales at {co}.", [n, co]),
            (f"Have you ever been to {city}?", [city]),
            (f"According to {n}, the {prod} is much faster than the old model.", [n, prod]),
            (f"{co} opened a new office in {city} last {self.c(MONTHS)}.", [co, city]),
            (f"My name is {n} and I am calling from {co}.", [n, co]),
        ]
        t, e = opts[int(self.r.integers(len(opts)))]
        return Sentence(t, e, "names")

    def narrative(self) -> Sentence:
        n = self.c(FIRST)
        t = self.c([
            f"When {n} opened the {self.c(NOUNS)}, {self.clause()}.",
            f"It was a {self.c(ADJ)} {self.c(['morning', 'night', 'day', 'evening'])} and {self.clause()}.",
            f"{n} said that {self.clause()}.",
            f"After the {self.c(NOUNS)}, {self.clause()}.",
            f"Nobody knew why {self.clause()}.",
            f"If {self.clause()}, {self.clause()}.",
        ])
        return Sentence(_cap(t), [n], "narrative")

    def speech(self) -> Sentence:
        t = self.c([
            f"Let us {self.c(['build', 'protect', 'defend', 'renew', 'honor', 'share'])} the {self.c(ADJ)} {self.c(['promise', 'hope', 'freedom', 'future', 'dream', 'peace'])} of our {self.c(['nation', 'people', 'children', 'city', 'time'])}.",
            f"We shall {self.c(['never forget', 'always remember', 'meet', 'face', 'carry'])} the {self.c(['burden', 'challenge', 'cost', 'duty', 'hardship'])} of this {self.c(['generation', 'century', 'moment', 'struggle', 'age'])}.",
            f"My friends, the {self.c(['world', 'future', 'question', 'task'])} before us is {self.c(ADJ)}, but our {self.c(['will', 'courage', 'resolve', 'hope'])} is stronger.",
            f"Ladies and gentlemen, {self.clause()}.",
            f"Citizens of the {self.c(['world', 'republic', 'city', 'nation'])}, {self.c(['do not fear', 'remember', 'consider', 'defend'])} the {self.c(['truth', 'law', 'past', 'cause'])}.",
            f"Together we can {self.c(['change', 'shape', 'save', 'win'])} the {self.c(NOUNS)} and the {self.c(NOUNS)}.",
        ])
        return Sentence(t, [], "speech")

    def sentence(self) -> Sentence:
        fam = self.c(["general"] * 5 + ["question"] * 2 + ["dictation"] * 2 + ["command"] * 3 + ["numbers"] * 2
                     + ["names"] * 3 + ["narrative"] * 2 + ["speech"] * 1)
        while True:
            s = getattr(self, fam)()
            if not leaks_eval_text(s.text):
                s.text = re.sub(r"\s+", " ", s.text).strip()
                return s


_BASE = {"found": "find", "lost": "lose", "bought": "buy", "sold": "sell", "built": "build", "broke": "break",
         "wrote": "write", "read": "read", "sent": "send", "forgot": "forget", "carried": "carry",
         "studied": "study", "dropped": "drop", "planned": "plan", "cancelled": "cancel"}
_E_BASE = {"move", "close", "notice", "describe", "receive", "replace", "measure", "approve"}


def _cap(t: str) -> str:
    return t[:1].upper() + t[1:]


def _words(t: str) -> list[str]:
    return re.findall(r"[a-z']+", t.lower())


_EVAL_5GRAMS = {tuple(_words(JFK_TEXT)[i:i + 5]) for i in range(len(_words(JFK_TEXT)) - 4)}


def leaks_eval_text(text: str) -> bool:
    w = _words(text)
    return any(tuple(w[i:i + 5]) in _EVAL_5GRAMS for i in range(len(w) - 4))


def distractors(r: np.random.Generator, k: int, avoid: set[str]) -> list[str]:
    out = []
    pools = [FIRST, LAST, CITIES, COMPANIES, PRODUCTS]
    while len(out) < k:
        pool = pools[int(r.integers(len(pools)))]
        if pool is FIRST and r.random() < 0.6:
            cand = f"{pool[int(r.integers(len(pool)))]} {LAST[int(r.integers(len(LAST)))]}"
        else:
            cand = pool[int(r.integers(len(pool)))]
        if cand not in avoid and cand not in out:
            out.append(cand)
    return out
