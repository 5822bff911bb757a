"""The project's own English sentence generator: a small probabilistic grammar.

The embedded corpus (``asr.corpus.synth``) speaks these sentences with espeak-ng.
The grammar is deliberately tame: a controlled vocabulary (about 1,500 common,
regularly spelled words) so that a character-level model sees every word many
times in 3 hours of audio (the default corpus has 6), yet enough templates and slots that sentences rarely
repeat and an n-gram language model trained on the train text is meaningful.

Design choices, and why:

* Verbs are in the past tense (or after ``did``/``will``/``to``), so subject-verb
  agreement never comes up; ``was``/``were`` are the only agreeing forms.
* Verbs only take objects of the classes listed for them ("ate" takes food,
  "drove" takes vehicles), which keeps sentences natural-ish.
* Heteronyms (read, lead, live, wind, tear, bow) and one side of common homophone
  pairs (by/buy, sea/see, son/sun, meat/meet, their/there, ...) are left out: the
  acoustic model cannot tell them apart, so they would only add noise to a WER.
* Words are lower-case a-z plus a few contractions ("didn't"), so transcripts fit
  the project's character set; numbers are spelled out.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterable, Iterator

MIN_WORDS = 6  # words; shortest sentence we keep
MAX_WORDS = 16  # words; longest sentence we keep


def _w(block: str) -> tuple[str, ...]:
    """Split a whitespace-separated word block into a tuple, without duplicates."""
    return tuple(dict.fromkeys(block.split()))


# ---------------------------------------------------------------------------
# Word lists
# ---------------------------------------------------------------------------

FIRST_NAMES = _w("""
    anna ben tom sarah david emma lucy peter mary james kate sam paul maria daniel
    laura helen adam alice oliver sophie henry emily thomas lily jacob olivia ethan
    chloe noah ella lucas mia leo zoe oscar ruby harry amy jamie nina simon julia
    martin linda robert susan frank carol eric diana kevin sandra brian karen george
    nancy steven betty edward clara victor irene albert rita felix wendy hugo nora
    arthur lisa max sally carlos elena tony fiona alex megan dennis hannah ryan
    rachel luke molly owen jenny ivan tina oscar sofia kyle abby marco bella
""")

PEOPLE = _w("""
    man woman boy girl child baby teacher doctor nurse farmer baker driver pilot
    painter singer dancer student friend neighbor brother sister mother father uncle
    aunt cousin grandmother grandfather daughter husband wife king queen captain
    soldier sailor fisherman guard cook waiter artist writer player lady gentleman
    stranger visitor guest tourist shopkeeper mechanic plumber carpenter gardener
    postman policeman firefighter dentist teenager princess prince coach manager
    boss clerk judge hunter traveler musician
""")

ANIMALS = _w("""
    dog cat horse cow pig sheep goat chicken duck goose rabbit mouse rat fox wolf
    bear deer lion tiger elephant monkey zebra camel donkey frog snake turtle owl
    eagle parrot swan crow pigeon whale dolphin shark fish crab spider bat squirrel
    hamster puppy kitten pony lamb calf giraffe penguin kangaroo hedgehog
""")

# Things, by class: verbs below say which classes they take as objects.
THINGS: dict[str, tuple[str, ...]] = {
    "container": _w("""box bag basket bottle jar cup mug bucket bowl pot pan tray suitcase
                       backpack barrel kettle jug purse wallet envelope"""),
    "clothing": _w("""coat hat cap shirt dress skirt jacket sweater scarf glove sock shoe
                      boot belt apron blouse vest raincoat"""),
    "furniture": _w("""chair table bed desk sofa shelf bench stool bookcase armchair
                       wardrobe crib"""),
    "tool": _w("""hammer knife rope ladder shovel brush broom key needle spoon fork nail
                  rake wheel chain net umbrella torch screwdriver"""),
    "paper": _w("""letter book map card note ticket newspaper magazine picture photo
                   poster list recipe diary notebook calendar stamp"""),
    "vehicle": _w("""car bike bus truck van boat ship train plane tractor wagon taxi canoe
                     scooter"""),
    "toy": _w("""ball kite doll puzzle balloon toy whistle robot marble teddy sled"""),
    "instrument": _w("""piano guitar violin drum flute trumpet harp"""),
    "linen": _w("blanket pillow towel curtain carpet rug sheet mat cushion quilt"),
    "device": _w("phone radio camera computer television clock lamp heater fan laptop"),
    "fixture": _w("window door gate fence mirror basin sink cupboard drawer"),
    "small": _w("candle sponge soap bell button ribbon coin badge comb"),
    "nature": _w("""flower tree stone rock leaf branch shell feather seed plant log stick
                    pebble acorn mushroom"""),
    "fruit": _w("""apple banana orange pear peach plum lemon cherry grape melon strawberry
                   coconut pineapple"""),
    "vegetable": _w("""potato carrot onion tomato cabbage pumpkin cucumber pepper
                       turnip"""),
    "baked": _w("""cake pie cookie sandwich biscuit muffin pancake pizza loaf bun"""),
    "written": _w("""story poem song message report joke question"""),
    "building": _w("""house cottage hut shed tent barn nest snowman wall tower"""),
}

# Uncountable food and drink: no "a", no numbers ("some bread", "the milk").
MASS_FOOD = _w("""bread soup cheese butter rice pasta jam honey chocolate salad popcorn
                  porridge cereal""")
DRINKS = _w("""milk juice tea coffee water lemonade cocoa""")
GAMES = _w("""chess football tennis cards basketball volleyball hockey baseball""")

# Places with the preposition that reads naturally before them ("at the station").
PLACES: dict[str, tuple[str, ...]] = {
    "at": _w("""market station airport library museum hospital bakery office bank hotel
                restaurant zoo stadium factory harbor cinema pharmacy post_office
                supermarket gym bus_stop"""),
    "in": _w("""park garden forest kitchen village city town field valley square yard
                classroom garage cellar attic hallway meadow orchard jungle"""),
    "on": _w("""hill mountain beach island bridge farm roof street playground lawn porch
                balcony platform riverbank"""),
    "near": _w("""river lake castle church school cave pond stream lighthouse palace
                  fountain waterfall cliff windmill"""),
}

ADJ_SIZE = _w("small big large little tiny huge tall short long wide narrow round")
ADJ_THING = _w("""old new heavy soft hard warm cold clean dirty wet dry empty full cheap
                  expensive beautiful pretty strange funny lovely nice fancy simple broken
                  shiny bright dark plastic wooden metal sharp smooth rough thick thin
                  strong handy ugly dusty rusty famous special favorite lucky spare""")
ADJ_FOOD = _w("""fresh ripe sweet sour bitter salty spicy tasty delicious crispy warm cold
                 hot juicy soft stale creamy""")
ADJ_PERSON = _w("""happy sad angry tired hungry thirsty busy lazy clever brave kind friendly
                   polite shy proud calm gentle sleepy grumpy cheerful curious careful
                   nervous worried excited lonely young old tall quiet noisy funny
                   patient famous rich lucky silly wise strict""")
ADJ_ANIMAL = _w("""small big little tiny huge young old wild hungry sleepy friendly lazy
                   noisy quiet fat skinny fast slow clever brave curious playful fluffy""")
COLOURS = _w("red blue green yellow purple pink brown black white gray golden silver orange")
ADJ_WEATHER = _w("cold warm hot windy rainy sunny cloudy foggy stormy snowy wet dry chilly")

NUMBERS = _w("""two three four five six seven eight nine ten eleven twelve fifteen twenty
                thirty forty fifty""")

DEGREE = _w("very quite really rather extremely fairly")
ADVERBS = _w("""slowly quickly quietly loudly carefully gently happily sadly angrily
                suddenly finally easily politely proudly calmly bravely nervously patiently
                softly eagerly secretly proudly carelessly cheerfully kindly""")

TIMES_PAST = _w("""yesterday last_night last_week last_year last_month last_summer
                   last_winter last_spring last_autumn this_morning this_afternoon
                   this_evening early_this_morning in_the_morning in_the_evening
                   in_the_afternoon at_night at_noon at_midnight after_dinner after_lunch
                   after_breakfast after_school after_work before_dinner before_lunch
                   before_breakfast before_school late_at_night two_days_ago
                   three_weeks_ago a_week_ago a_long_time_ago a_few_days_ago
                   during_the_storm during_the_holidays on_the_weekend on_my_birthday
                   at_christmas every_morning every_summer every_day""")
WEEKDAYS = _w("monday tuesday wednesday thursday friday saturday sunday")
MONTHS = _w("january february march april june july august september october november december")
TIMES_FUTURE = _w("""tomorrow tomorrow_morning tomorrow_evening next_week next_month
                     next_year next_summer next_winter tonight soon later_today
                     after_dinner after_school before_lunch this_weekend""")

PRONOUNS = _w("i we they he she you")
OBJ_PRONOUNS = _w("me us them him her you")
POSSESSIVES = _w("my your his her our")

LOCATION_PREPS = _w("near behind beside under inside outside next_to in_front_of")
THING_LOCATION_PREPS = _w("on under behind beside next_to near")
# Motion prepositions that suit each kind of place (keys of PLACES).
PATH_PREPS = {
    "at": _w("to toward into around"),
    "in": _w("to through across around into"),
    "on": _w("to across along up down"),
    "near": _w("to toward around along across"),
}
WATER_PLACES = _w("river lake pond stream harbor")
CONNECTORS = _w("and but because so")
TIME_CONJ = _w("when after before while")

# Verbs that read well with a destination ("carried the box to the market") and
# verbs that read well with where a thing lay ("found the key under the bed").
DESTINATION_VERBS = frozenset(_w("carry bring take send move push pull deliver drive ride return chase follow"))
LOCATING_VERBS = frozenset(_w("""find lose drop leave hide keep see notice hang pick_up grab forget count
                                 collect watch catch touch put paint clean"""))

# Transitive verbs: "base past: object classes". Classes are THINGS keys plus
# person, animal, food (fruit/vegetable/baked/mass), drink, game, place.
_TRANSITIVE = """
    carry carried: container furniture tool toy instrument linen device small food
    find found: container clothing tool paper toy nature animal small device food
    buy bought: container clothing furniture tool paper vehicle toy instrument linen device small food drink
    sell sold: container clothing furniture tool paper vehicle toy instrument linen device food animal
    bring brought: container clothing tool paper toy linen small nature food drink
    take took: container clothing tool paper toy linen small device nature food
    lose lost: container clothing tool paper toy device small
    drop dropped: container tool paper toy device small food
    pick_up picked_up: container clothing tool paper toy nature linen small
    paint painted: furniture vehicle fixture toy container building
    clean cleaned: furniture vehicle container fixture tool instrument device linen
    wash washed: clothing container vehicle fruit vegetable animal linen
    fix fixed: furniture vehicle tool fixture device toy instrument
    break broke: container device toy tool furniture fixture
    open opened: container =door =window =gate =letter =book =drawer =cupboard =curtain
    close closed: container =door =window =gate =book =drawer =cupboard =curtain
    fill filled: container
    empty emptied: container
    pack packed: container clothing food
    move moved: furniture vehicle container device linen
    push pushed: furniture vehicle container
    pull pulled: vehicle container toy
    hide hid: container paper toy tool small device food
    keep kept: paper toy container animal small
    hold held: container tool paper toy animal instrument small
    send sent: paper container food
    write wrote: written paper
    draw drew: animal nature building vehicle
    play played: instrument game
    watch watched: animal vehicle person game
    see saw: animal vehicle person building
    hear heard: instrument animal person =radio =phone =bell =clock =whistle
    cook cooked: vegetable mass_food dish
    eat ate: fruit vegetable baked mass_food
    bake baked: baked bread
    cut cut: fruit vegetable baked bread paper =rope =ribbon
    peel peeled: fruit vegetable
    taste tasted: fruit baked mass_food drink
    order ordered: baked mass_food drink
    drink drank: drink
    grow grew: fruit vegetable nature
    plant planted: nature vegetable fruit
    feed fed: animal person
    chase chased: animal person vehicle toy
    catch caught: animal toy vehicle
    follow followed: animal person vehicle
    help helped: person
    visit visited: person place
    meet met: person
    call called: person animal
    thank thanked: person
    teach taught: person
    invite invited: person
    wake woke: person animal
    greet greeted: person
    miss missed: person vehicle
    hug hugged: person animal
    build built: building furniture vehicle
    climb climbed: nature building =ladder
    cross crossed: place
    borrow borrowed: container clothing tool paper vehicle toy instrument device
    return returned: container clothing tool paper vehicle toy instrument device
    forget forgot: container clothing tool paper toy device
    wrap wrapped: container toy =book =scarf =candle =clock =picture =blanket
    count counted: animal container fruit nature small
    collect collected: nature paper toy small
    share shared: fruit baked mass_food drink
    hang hung: clothing =picture =poster =photo =calendar =map =lamp =mirror =clock =curtain =bell =towel
    lift lifted: container furniture toy
    kick kicked: toy container
    shake shook: container linen =bell
    fold folded: clothing paper linen
    tie tied: =rope =ribbon =scarf =shoe =boot =belt
    park parked: vehicle
    drive drove: vehicle
    ride rode: vehicle animal
    repair repaired: furniture vehicle tool fixture device toy instrument
    check checked: paper vehicle tool device
    choose chose: clothing paper toy fruit baked linen
    want wanted: container clothing toy vehicle fruit baked drink
    like liked: animal person toy fruit baked game written
    love loved: animal person toy fruit baked game written
    enjoy enjoyed: baked mass_food drink game written
    answer answered: =phone =door =letter =question =message
    notice noticed: animal person vehicle fixture building
    study studied: paper written
    measure measured: furniture fixture linen container
    lock locked: =door =gate =window =car =bike =suitcase =box =drawer =cupboard =van =truck
    light lit: =candle =lamp =heater
    boil boiled: drink vegetable
    fry fried: vegetable mass_food
    mix mixed: mass_food drink
    serve served: baked mass_food drink
    deliver delivered: paper container furniture food
    print printed: paper
    sign signed: paper
    pay paid: person
    search searched: place container
    explore explored: place
    leave left: container clothing tool paper toy
    reach reached: place
    decorate decorated: baked building furniture
    fetch fetched: container clothing tool paper toy food
    grab grabbed: container clothing tool paper toy food
    touch touched: animal nature linen
    smell smelled: fruit baked mass_food nature
    train trained: animal
    brush brushed: animal
    rescue rescued: animal person
    scare scared: animal person
    surprise surprised: person
    steal stole: container clothing paper toy vehicle device
    weigh weighed: fruit vegetable container
    rent rented: vehicle building
    photograph photographed: animal building person
    describe described: animal building person written
    remember remembered: person written
"""

# Intransitive verbs ("base past"); the motion ones also take a path ("to the park").
_INTRANSITIVE = """
    sleep slept wait waited laugh laughed smile smiled cry cried dance danced sing sang
    shout shouted play played work worked arrive arrived stay stayed rest rested
    listen listened whistle whistled cheer cheered stop stopped cook cooked study studied
    fish fished camp camped relax relaxed shiver shivered wave waved nod nodded
    yawn yawned sneeze sneezed cough coughed clap clapped sit sat stand stood paint painted
    hide hid
"""
# Intransitive verbs an animal can be the subject of ("the old dog slept").
ANIMAL_INTRANSITIVE = frozenset(_w("slept waited rested stopped shivered yawned sneezed sat stood played hid"))
_MOTION = """
    walk walked run ran drive drove ride rode hurry hurried wander wandered swim swam
    sail sailed fly flew climb climbed jump jumped race raced crawl crawled march marched
    go went come came travel traveled rush rushed cycle cycled hike hiked skate skated
    stroll strolled
"""
# Verbs taking a recipient and a thing: "anna gave her brother a red kite".
_GIVING = "give gave show showed send sent lend lent sell sold bring brought hand handed offer offered"

# Words that only the templates themselves use (kept here so ``lexicon()`` is complete).
TEMPLATE_WORDS = _w("""
    the a an some these those many several a_few this that and there was were wasn't weren't
    didn't did will to who what where when why how could can would please it put leave take
    bring carry move hide keep said thought believed told explained noticed wanted tried
    decided forgot promised on in next from
""")

WEATHER_CLAUSES = (
    "it rained all day", "it started to snow", "the rain stopped", "the sun came out",
    "the wind was strong", "it was very foggy", "the storm passed", "the snow melted",
    "it was getting dark", "the weather was lovely", "the sky turned gray", "it was freezing outside",
)


def _pairs(block: str) -> list[tuple[str, str]]:
    """``(base, past)`` pairs from a flat ``base past base past ...`` block."""
    words = block.split()
    return [(words[i], words[i + 1]) for i in range(0, len(words), 2)]


@dataclass(frozen=True)
class Verb:
    base: str  # after did/will/to: "carry"
    past: str  # simple past: "carried"
    objects: tuple[str, ...] = ()  # object classes it takes (transitive verbs only)


def _parse_transitive(block: str) -> tuple[Verb, ...]:
    verbs = {}
    for line in block.strip().splitlines():
        forms, _, classes = line.partition(":")
        base, past = forms.split()
        verbs[base] = Verb(base, past, tuple(classes.split()))  # a later duplicate wins
    return tuple(verbs.values())


TRANSITIVE = _parse_transitive(_TRANSITIVE)
CLASS_OF = {noun: cls for cls, nouns in THINGS.items() for noun in nouns}  # noun -> its class
INTRANSITIVE = tuple(Verb(b, p) for b, p in _pairs(_INTRANSITIVE))
MOTION = tuple(Verb(b, p) for b, p in _pairs(_MOTION))
GIVING = tuple(Verb(b, p) for b, p in _pairs(_GIVING))

# ---------------------------------------------------------------------------
# Morphology
# ---------------------------------------------------------------------------

_IRREGULAR_PLURALS = {
    "man": "men", "woman": "women", "child": "children", "mouse": "mice", "sheep": "sheep",
    "fish": "fish", "deer": "deer", "goose": "geese", "person": "people", "fisherman": "fishermen",
    "policeman": "policemen", "postman": "postmen", "gentleman": "gentlemen", "knife": "knives",
    "leaf": "leaves", "loaf": "loaves", "shelf": "shelves", "wolf": "wolves", "calf": "calves",
    "scarf": "scarves", "potato": "potatoes", "tomato": "tomatoes", "wife": "wives",
    "teddy": "teddies", "lady": "ladies", "baby": "babies", "cherry": "cherries",
    "strawberry": "strawberries", "diary": "diaries", "library": "libraries",
}


def plural(noun: str) -> str:
    """English plural of a noun in our lists (regular rules plus a small exception table)."""
    if noun in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[noun]
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def article(next_word: str) -> str:
    """``a`` or ``an`` by the sound of the next word (our lists have no 'hour'/'uniform')."""
    return "an" if next_word[0] in "aeiou" else "a"


# ---------------------------------------------------------------------------
# Normalization
# ---------------------------------------------------------------------------

_NOT_WORD = re.compile(r"[^A-Z' ]+")


def normalize(text: str) -> str:
    """LibriSpeech-style transcript: UPPER-CASE words, letters and apostrophes, single spaces."""
    return " ".join(_NOT_WORD.sub(" ", text.upper().replace("_", " ")).split())


def spoken(words: Iterable[str]) -> str:
    """Join tokens into the text handed to espeak: punctuation glued to the word before it."""
    out = ""
    for tok in words:
        tok = tok.replace("_", " ")
        if not tok:
            continue
        if tok in {",", "?", "."}:
            out += tok
        else:
            out += (" " if out else "") + ("I" if tok == "i" else tok)
    return out


def word_count(text: str) -> int:
    return len(normalize(text).split())


# ---------------------------------------------------------------------------
# The grammar
# ---------------------------------------------------------------------------

Tokens = list[str]


@dataclass(frozen=True)
class Phrase:
    """A noun phrase and whether it is plural (for was/were)."""

    words: tuple[str, ...]
    plural: bool = False


class SentenceGenerator:
    """Draws sentences from the grammar; deterministic for a given ``random.Random``."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        templates: list[tuple[float, Callable[[], Tokens]]] = [
            (14, self.s_transitive),
            (8, self.s_time_first),
            (8, self.s_motion),
            (5, self.s_intransitive),
            (5, self.s_giving),
            (6, self.s_copula),
            (4, self.s_there),
            (4, self.s_negative),
            (5, self.s_future),
            (3, self.s_wanted),
            (3, self.s_said),
            (3, self.s_imperative),
            (10, self.s_two_clauses),
            (7, self.s_time_clause),
            (4, self.s_weather),
            (6, self.q_yes_no),
            (6, self.q_wh),
            (3, self.q_who),
            (3, self.q_how_many),
            (3, self.q_copula),
            (2, self.q_could),
            (3, self.q_intransitive),
        ]
        self._weights = [w for w, _ in templates]
        self._templates = [t for _, t in templates]

    # -- public ------------------------------------------------------------

    def sentence(self) -> str:
        """One sentence as spoken text (lower case, with commas and question marks)."""
        while True:
            template = self.rng.choices(self._templates, self._weights)[0]
            text = spoken(template())
            if MIN_WORDS <= word_count(text) <= MAX_WORDS:
                return text

    # -- small helpers -------------------------------------------------------

    def pick(self, seq):
        return self.rng.choice(seq)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def time_past(self) -> Tokens:
        r = self.rng.random()
        if r < 0.15:
            return ["on", self.pick(WEEKDAYS)]
        if r < 0.25:
            return ["in", self.pick(MONTHS)]
        return [self.pick(TIMES_PAST)]

    def time_future(self) -> Tokens:
        if self.chance(0.2):
            return [self.pick(("on", "next")), self.pick(WEEKDAYS)]
        return [self.pick(TIMES_FUTURE)]

    def place(self) -> Tokens:
        """``the market`` (no preposition)."""
        prep = self.pick(list(PLACES))
        return ["the", self.pick(PLACES[prep])]

    def place_pp(self) -> Tokens:
        """Where something happened: ``at the station``, ``near the river``."""
        prep = self.pick(list(PLACES))
        name = self.pick(PLACES[prep])
        if prep == "near" or self.chance(0.3):
            prep = self.pick(LOCATION_PREPS)
        return [prep, "the", name]

    def thing_location(self) -> Tokens:
        """Where a thing lies: ``under the old table``."""
        cls = self.pick(("furniture", "fixture", "container", "vehicle"))
        noun = self.pick(THINGS[cls])
        mods = [self.pick(ADJ_THING + ADJ_SIZE + COLOURS)] if self.chance(0.3) else []
        det = self.pick(("the", "the", "my", "your", "his", "her", "our"))
        return [self.pick(THING_LOCATION_PREPS), det, *mods, noun]

    # -- noun phrases ----------------------------------------------------------

    def determiner(self, head_first: str, plural_np: bool, mass: bool = False) -> Tokens:
        """A determiner that agrees with the noun phrase (``an old``, ``seven``, ``some``)."""
        if mass:
            return [self.pick(("the", "some", "my", "our", "this", "that", "your", "her", "his"))]
        if plural_np:
            r = self.rng.random()
            if r < 0.45:
                return [self.pick(NUMBERS)]
            return [self.pick(("the", "some", "these", "those", "my", "our", "many", "several",
                               "your", "his", "her", "a_few"))]
        r = self.rng.random()
        if r < 0.4:
            return [article(head_first)]
        return [self.pick(("the", "the", "my", "your", "his", "her", "our", "this", "that"))]

    def modifiers(self, adjectives: tuple[str, ...], colour: bool, p: float = 0.6) -> Tokens:
        """Zero to two adjectives, optionally a degree word or a colour."""
        mods: Tokens = []
        if self.chance(p):
            if self.chance(0.12):
                mods.append(self.pick(DEGREE))
            mods.append(self.pick(adjectives))
        if colour and self.chance(0.3):
            mods.append(self.pick(COLOURS))
        return mods

    def np_of(self, cls: str, plural_p: float = 0.3) -> Phrase:
        """A noun phrase of one object class: ``three heavy boxes``, ``the fresh bread``."""
        if cls in ("mass_food", "bread", "drink"):
            noun = "bread" if cls == "bread" else self.pick(DRINKS if cls == "drink" else MASS_FOOD)
            mods = self.modifiers(ADJ_FOOD, colour=False, p=0.4)
            return Phrase((*self.determiner("x", False, mass=True), *mods, noun))
        if cls == "game":
            return Phrase((self.pick(GAMES),))
        if cls == "dish":
            cls = self.pick(("vegetable", "baked"))
        if cls == "food":
            cls = self.pick(("fruit", "vegetable", "baked", "mass_food"))
            return self.np_of(cls, plural_p)
        if cls == "person":
            return self.person_np()
        if cls == "animal":
            return self.animal_np(plural_p)
        if cls == "place":
            return Phrase(tuple(self.place()))
        if cls.startswith("="):  # a single noun named by the verb table: "=door"
            noun, cls = cls[1:], CLASS_OF[cls[1:]]
        else:
            noun = self.pick(THINGS[cls])
        is_plural = cls != "written" and self.chance(plural_p)
        if cls in ("fruit", "vegetable", "baked"):
            adjectives, colour = ADJ_FOOD + ADJ_SIZE, cls != "baked"
        else:
            adjectives, colour = ADJ_THING + ADJ_SIZE, cls not in ("written", "paper")
        mods = self.modifiers(adjectives, colour)
        head = mods[0] if mods else noun
        det = self.determiner(head, is_plural)
        return Phrase((*det, *mods, plural(noun) if is_plural else noun), is_plural)

    def person_np(self, allow_plural: bool = True) -> Phrase:
        """``anna``, ``my old neighbor``, ``two tired doctors``."""
        r = self.rng.random()
        if r < 0.3:
            return Phrase((self.pick(FIRST_NAMES),))
        if r < 0.4:
            return Phrase((self.pick(FIRST_NAMES), "and", self.pick(FIRST_NAMES)), True)
        is_plural = allow_plural and self.chance(0.2)
        noun = self.pick(PEOPLE)
        mods = self.modifiers(ADJ_PERSON, colour=False, p=0.5)
        head = mods[0] if mods else noun
        det = self.determiner(head, is_plural)
        return Phrase((*det, *mods, plural(noun) if is_plural else noun), is_plural)

    def animal_np(self, plural_p: float = 0.25) -> Phrase:
        is_plural = self.chance(plural_p)
        noun = self.pick(ANIMALS)
        mods = self.modifiers(ADJ_ANIMAL, colour=True, p=0.55)
        head = mods[0] if mods else noun
        det = self.determiner(head, is_plural)
        return Phrase((*det, *mods, plural(noun) if is_plural else noun), is_plural)

    def subject(self, animals: bool = False) -> Phrase:
        """A sentence subject: pronoun, name or noun phrase (optionally an animal)."""
        r = self.rng.random()
        if r < 0.3:
            p = self.pick(PRONOUNS)
            return Phrase((p,), p in ("we", "they", "you"))
        if animals and r < 0.5:
            return self.animal_np()
        return self.person_np()

    def recipient(self) -> Tokens:
        """An indirect object: ``her little brother``, ``the waiter``, ``us``."""
        r = self.rng.random()
        if r < 0.25:
            return [self.pick(OBJ_PRONOUNS)]
        if r < 0.5:
            return [self.pick(FIRST_NAMES)]
        mods = self.modifiers(ADJ_PERSON + ADJ_SIZE, colour=False, p=0.3)
        return [self.pick(POSSESSIVES + ("the",)), *mods, self.pick(PEOPLE)]

    def object_of(self, verb: Verb) -> Tokens:
        return list(self.np_of(self.pick(verb.objects)).words)

    def adverb(self, p: float) -> Tokens:
        return [self.pick(ADVERBS)] if self.chance(p) else []

    # -- clauses -----------------------------------------------------------------

    def transitive_clause(self, extras: bool = True) -> Tokens:
        verb = self.pick(TRANSITIVE)
        words = [*self.subject().words, *self.adverb(0.08), verb.past, *self.object_of(verb)]
        if extras:
            words += self.object_tail(verb)
        return words

    def object_tail(self, verb: Verb) -> Tokens:
        """What may follow ``verb object``: a place, a destination or a thing's location."""
        r = self.rng.random()
        if r < 0.3 and verb.base in DESTINATION_VERBS:
            return ["to", *self.place()]
        if r < 0.3 and verb.base in LOCATING_VERBS:
            return self.thing_location()
        if r < 0.55 and "place" not in verb.objects:
            return self.place_pp()
        return []

    def intransitive_clause(self) -> Tokens:
        verb = self.pick(INTRANSITIVE)
        subj = self.subject(animals=verb.past in ANIMAL_INTRANSITIVE)
        return [*subj.words, verb.past, *self.adverb(0.35)]

    def motion_clause(self) -> Tokens:
        verb = self.pick(MOTION)
        subj = self.subject(animals=verb.base not in ("drive", "travel", "cycle", "sail")).words
        return [*subj, verb.past, *self.adverb(0.3), *self.path(verb)]

    def path(self, verb: Verb) -> Tokens:
        """Where a motion went: ``across the bridge``, ``from the farm to the market``."""
        if verb.base in ("swim", "sail"):
            return [self.pick(("across", "along", "to", "around")), "the", self.pick(WATER_PLACES)]
        if self.chance(0.1):
            return ["from", *self.place(), "to", *self.place()]
        kind = self.pick(list(PLACES))
        return [self.pick(PATH_PREPS[kind]), "the", self.pick(PLACES[kind])]

    def short_clause(self) -> Tokens:
        """A clause that fits in a two-clause sentence."""
        r = self.rng.random()
        if r < 0.4:
            return self.transitive_clause(extras=self.chance(0.3))
        if r < 0.6:
            return self.intransitive_clause()
        if r < 0.8:
            return self.motion_clause()
        if r < 0.9:
            return self.copula_clause()
        return list(self.pick(WEATHER_CLAUSES).split())

    def copula_clause(self) -> Tokens:
        if self.chance(0.5):
            subj = self.person_np() if self.chance(0.6) else self.animal_np()
            adjectives = ADJ_PERSON
        else:
            cls = self.pick(("container", "clothing", "furniture", "device", "linen", "fruit", "baked", "mass_food"))
            subj = self.np_of(cls, plural_p=0.25)
            adjectives = ADJ_FOOD if cls in ("fruit", "baked", "mass_food") else ADJ_THING
        degree = [self.pick(DEGREE)] if self.chance(0.35) else []
        return [*subj.words, "were" if subj.plural else "was", *degree, self.pick(adjectives)]

    # -- sentence templates --------------------------------------------------------

    def s_transitive(self) -> Tokens:
        words = self.transitive_clause()
        return words + (self.time_past() if self.chance(0.4) else [])

    def s_time_first(self) -> Tokens:
        time = self.time_past()
        body = self.pick((self.transitive_clause, self.motion_clause, self.intransitive_clause))()
        return [*time, ",", *body]

    def s_motion(self) -> Tokens:
        return self.motion_clause() + (self.time_past() if self.chance(0.5) else [])

    def s_intransitive(self) -> Tokens:
        words = self.intransitive_clause()
        if self.chance(0.6):
            words += self.place_pp()
        return words + (self.time_past() if self.chance(0.5) else [])

    def s_giving(self) -> Tokens:
        verb = self.pick(GIVING)
        cls = self.pick(("container", "clothing", "toy", "paper", "fruit", "baked", "tool", "instrument"))
        obj = self.np_of(cls, plural_p=0.3).words
        return [*self.subject().words, verb.past, *self.recipient(), *obj,
                *(self.time_past() if self.chance(0.4) else [])]

    def s_copula(self) -> Tokens:
        words = self.copula_clause()
        return words + (self.time_past() if self.chance(0.5) else [])

    def s_there(self) -> Tokens:
        np = self.animal_np(0.5) if self.chance(0.5) else self.np_of(
            self.pick(("container", "toy", "fruit", "tool", "paper", "clothing", "nature")), 0.5)
        where = self.thing_location() if self.chance(0.5) else self.place_pp()
        return ["there", "were" if np.plural else "was", *np.words, *where]

    def s_negative(self) -> Tokens:
        if self.chance(0.3):
            words = self.copula_clause()
            i = words.index("were" if "were" in words else "was")
            words[i] = words[i] + "n't"
            return words + (self.time_past() if self.chance(0.4) else [])
        verb = self.pick(TRANSITIVE)
        return [*self.subject().words, "didn't", verb.base, *self.object_of(verb),
                *(self.time_past() if self.chance(0.5) else [])]

    def s_future(self) -> Tokens:
        if self.chance(0.3):
            verb = self.pick(MOTION)
            rest = [verb.base, *self.path(verb)]
        else:
            verb = self.pick(TRANSITIVE)
            rest = [verb.base, *self.object_of(verb), *self.object_tail(verb)]
        return [*self.time_future(), ",", *self.subject().words, "will", *rest] if self.chance(0.4) else \
            [*self.subject().words, "will", *rest, *self.time_future()]

    def s_wanted(self) -> Tokens:
        verb = self.pick(TRANSITIVE)
        return [*self.subject().words, self.pick(("wanted", "tried", "decided", "forgot", "promised")),
                "to", verb.base, *self.object_of(verb), *self.object_tail(verb)]

    def s_said(self) -> Tokens:
        speaker = self.subject().words
        verb = self.pick(("said", "thought", "believed", "told_me", "told_us", "explained", "noticed"))
        return [*speaker, verb, "that", *self.short_clause()]

    def s_imperative(self) -> Tokens:
        verb = self.pick(("put", "leave", "hide", "keep", "take", "bring", "carry", "move"))
        cls = self.pick(("container", "clothing", "tool", "toy", "paper", "fruit", "small"))
        obj = self.np_of(cls).words
        where = self.thing_location() if verb in ("put", "leave", "hide", "keep") else ["to", *self.place()]
        opener = self.pick((["please"], ["please"], [self.pick(FIRST_NAMES), ","], []))
        return [*opener, verb, *obj, *where]

    def s_two_clauses(self) -> Tokens:
        conj = self.pick(CONNECTORS)
        return [*self.short_clause(), "," if conj in ("but", "so") else "", conj, *self.short_clause()]

    def s_time_clause(self) -> Tokens:
        conj = self.pick(TIME_CONJ)
        first, second = self.short_clause(), self.short_clause()
        return [conj, *first, ",", *second] if self.chance(0.6) else [*second, conj, *first]

    def s_weather(self) -> Tokens:
        r = self.rng.random()
        if r < 0.4:
            return ["it", "was", *([self.pick(DEGREE)] if self.chance(0.4) else []),
                    self.pick(ADJ_WEATHER), *self.place_pp(), *self.time_past()]
        clause = self.pick(WEATHER_CLAUSES).split()
        return [*clause, ",", self.pick(("so", "and", "but")), *self.short_clause()]

    def q_yes_no(self) -> Tokens:
        verb = self.pick(TRANSITIVE)
        tail = self.object_tail(verb) if self.chance(0.5) else self.time_past()
        return ["did", *self.subject().words, verb.base, *self.object_of(verb), *tail, "?"]

    def q_wh(self) -> Tokens:
        verb = self.pick(TRANSITIVE)
        wh = self.pick(("where", "when", "why", "how", "what"))
        if wh == "what":  # the object is the question: "what did anna buy at the market?"
            return ["what", "did", *self.subject().words, verb.base,
                    *(self.place_pp() if self.chance(0.6) else self.time_past()), "?"]
        tail = [] if wh == "where" else self.object_tail(verb)
        return [wh, "did", *self.subject().words, verb.base, *self.object_of(verb), *tail, "?"]

    def q_who(self) -> Tokens:
        verb = self.pick(TRANSITIVE)
        return ["who", verb.past, *self.object_of(verb), *self.object_tail(verb),
                *(self.time_past() if self.chance(0.4) else []), "?"]

    def q_how_many(self) -> Tokens:
        verb = self.pick([v for v in TRANSITIVE if set(v.objects) & {"container", "fruit", "toy", "animal"}])
        cls = self.pick([c for c in verb.objects if c in ("container", "fruit", "toy", "animal")])
        noun = self.pick(ANIMALS if cls == "animal" else THINGS[cls])
        return ["how", "many", plural(noun), "did", *self.subject().words, verb.base,
                *(self.place_pp() if self.chance(0.6) else self.time_past()), "?"]

    def q_copula(self) -> Tokens:
        words = self.copula_clause()
        i = words.index("were" if "were" in words else "was")
        return [words[i], *words[:i], *words[i + 1:], *(self.time_past() if self.chance(0.4) else []), "?"]

    def q_could(self) -> Tokens:
        opener = [self.pick(("could", "can", "would")), "you", *(["please"] if self.chance(0.4) else [])]
        if self.chance(0.3):  # "could you hand me the blue cup?"
            cls = self.pick(("container", "clothing", "toy", "paper", "fruit", "baked", "tool", "small"))
            return [*opener, self.pick(GIVING).base, self.pick(("me", "us", "him", "her", "them")),
                    *self.np_of(cls).words, "?"]
        verb = self.pick(TRANSITIVE)
        return [*opener, verb.base, *self.object_of(verb), *self.object_tail(verb), "?"]

    def q_intransitive(self) -> Tokens:
        """``did the baby sleep in the kitchen?``, ``will you wait at the station tomorrow?``"""
        verb = self.pick(INTRANSITIVE)
        subj = self.subject(animals=verb.past in ANIMAL_INTRANSITIVE).words
        if self.chance(0.5):
            return ["did", *subj, verb.base, *self.place_pp(), *self.time_past(), "?"]
        return ["will", *subj, verb.base, *self.place_pp(), *self.time_future(), "?"]


# ---------------------------------------------------------------------------
# Public helpers
# ---------------------------------------------------------------------------


def sentence_stream(seed: int | str) -> Iterator[str]:
    """An endless, deterministic stream of spoken-text sentences for ``seed``.

    ``random.Random`` seeded with a str is stable across Python runs (it is hashed
    with SHA-512, not with the per-process ``hash()``), so equal seeds give equal text.
    """
    gen = SentenceGenerator(random.Random(f"asr-sentences-{seed}"))
    while True:
        yield gen.sentence()


@lru_cache(maxsize=1)
def lexicon() -> frozenset[str]:
    """Every word form the word lists can produce (upper case), for tests and reports."""
    words: set[str] = set()
    nouns = [*PEOPLE, *ANIMALS, *(n for cls, ns in THINGS.items() for n in ns if cls != "written")]
    words.update(nouns)
    words.update(plural(n) for n in nouns)
    words.update(THINGS["written"])  # never plural in the grammar
    lists = (FIRST_NAMES, MASS_FOOD, DRINKS, GAMES, ADJ_SIZE, ADJ_THING, ADJ_FOOD, ADJ_PERSON,
             ADJ_ANIMAL, COLOURS, ADJ_WEATHER, NUMBERS, DEGREE, ADVERBS, TIMES_PAST, WEEKDAYS,
             MONTHS, TIMES_FUTURE, PRONOUNS, OBJ_PRONOUNS, POSSESSIVES, LOCATION_PREPS,
             THING_LOCATION_PREPS, *PATH_PREPS.values(), CONNECTORS, TIME_CONJ, WEATHER_CLAUSES, TEMPLATE_WORDS,
             *PLACES.values())
    for lst in lists:
        words.update(lst)
    for v in (*TRANSITIVE, *INTRANSITIVE, *MOTION, *GIVING):
        words.update((v.base, v.past))
    return frozenset(w for entry in words for w in normalize(entry).split())
