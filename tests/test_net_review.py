"""The safety net after the review of the citizens'-styles round (issue #11): each defect it found, pinned by a test."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.safety_net import SafetyNet

# A tiny rules file that exercises the engine alone: '##' numbers and a guard that acts within one clause.
ENGINE = """
words:
  fruit: [apfel]
  pear: [birne]
  now: [jetzt]
  loud: [laut]
  count: ['## tabletten']
  any_count: ['# kekse']
guards:
  story:
    within: clause
    lifted_by: [now]
    words: [war]
  sentence_wide:
    words: [war]
  maybe:
    not_after: [als]
    words: [wuerde]
  years:
    not_after: ['#']
    words: [jahre]
  said:
    within: clause
    lifted_by: [now]
    lifted_beside: false
    words: [meinte]
  bought:
    lifted_by: [loud]
    lifted_in: message
    words: [gekauft]
rules:
  - {name: pair, intent: emergency, all: [fruit, pear], unless: [story], examples: [apfel birne]}
  - {name: pair_whole_sentence, intent: self_harm, all: [pear, now], unless: [sentence_wide], examples: [birne jetzt]}
  - {name: many, intent: self_harm, all: [count], examples: [10 tabletten]}
  - {name: some, intent: self_harm, all: [any_count], examples: [3 kekse]}
  - {name: maybe_pair, intent: emergency, all: [pear, fruit], unless: [maybe], examples: [birne und apfel]}
  - {name: said_pair, intent: emergency, all: [fruit, pear], unless: [said], examples: [apfel birne]}
  - {name: bought_pair, intent: emergency, all: [fruit, pear], unless: [bought], examples: [apfel birne]}
  - {name: close_pair, intent: emergency, all: [fruit, pear], scope: clause, examples: [apfel birne]}
  - {name: years_pair, intent: emergency, all: [fruit, pear], unless: [years], examples: [apfel birne]}
"""


@pytest.fixture(scope="module")
def engine() -> SafetyNet:
    return SafetyNet.from_doc(yaml.safe_load(ENGINE), Path("engine.yml"))


def fired(net: SafetyNet, text: str, rule: str = "") -> str | None:
    """The rule that fires on `text`; with `rule`, that one rule alone (the others aside)."""
    if rule:
        return rule if net.fires(next(r for r in net.word_rules if r.name == rule), text) else None
    hit = net.check(text)
    return hit.rule if hit else None


@pytest.mark.parametrize(("text", "rule"), [("10 tabletten", "many"), ("25 tabletten", "many"), ("9 tabletten", None),
                                            ("3 tabletten", None), ("0 tabletten", None), ("3 kekse", "some")])
def test_two_hashes_stand_for_a_number_of_ten_or_more(engine: SafetyNet, text: str, rule: str | None) -> None:
    assert fired(engine, text) == rule


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("apfel war birne", None),  # guard and both words in one clause
        ("der apfel war da, die birne", None),  # only the birne is left: the apfel's clause is guarded
        ("der apfel war da, die birne liegt beim apfel", "pair"),  # defect 2: the other clause alone still matches
        ("die birne war faul, der apfel und jetzt die birne", "pair"),
        ("apfel war jetzt birne", "pair"),  # lifted by a now-word in its clause
        ("die kiste war leer, apfel und birne liegen da", "pair"),  # 'und' opens a clause
    ],
)
def test_a_clause_guard_drops_only_the_words_of_its_own_clause(engine: SafetyNet, text: str, rule: str | None) -> None:
    assert fired(engine, text, "pair") == rule


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("der apfel war da, jetzt die birne", "pair"),  # second review, 6: a matched clause told now keeps the guarded one
        ("der apfel war da, die birne", None),  # ... and without the now-word the guarded clause is still dropped
        ("der apfel war da, die birne. jetzt", None),  # a now-word in another sentence lifts nothing
    ],
)
def test_a_clause_guard_drops_nothing_when_a_matched_clause_is_told_now(engine: SafetyNet, text: str, rule: str | None) -> None:
    assert fired(engine, text, "pair") == rule


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("meinte jetzt apfel birne", None),  # second review, 9: the now-word next to the guard word says when it was said
        ("jetzt meinte apfel birne", None),
        ("meinte apfel jetzt birne", "said_pair"),  # a now-word elsewhere in the clause still lifts
    ],
)
def test_a_now_word_beside_the_guard_word_does_not_lift_it(engine: SafetyNet, text: str, rule: str | None) -> None:
    assert fired(engine, text, "said_pair") == rule


@pytest.mark.parametrize(
    ("text", "rule"),
    [("apfel birne gekauft", None), ("apfel birne gekauft. laut", "bought_pair"), ("apfel birne gekauft, laut", "bought_pair")],
)
def test_a_guard_lifted_in_the_message_is_lifted_by_a_word_anywhere(engine: SafetyNet, text: str, rule: str | None) -> None:
    assert fired(engine, text, "bought_pair") == rule


@pytest.mark.parametrize(("text", "rule"), [("apfel und birne", None), ("apfel, birne", None), ("der apfel bei der birne", "close_pair")])
def test_a_rule_with_clause_scope_needs_its_words_in_one_clause(engine: SafetyNet, text: str, rule: str | None) -> None:
    assert fired(engine, text, "close_pair") == rule


def test_a_sentence_guard_still_acts_on_the_whole_sentence(engine: SafetyNet) -> None:
    assert fired(engine, "es war so, die birne jetzt", "pair_whole_sentence") is None
    assert fired(engine, "es war so. die birne jetzt", "pair_whole_sentence") == "pair_whole_sentence"


def test_a_guard_word_after_a_not_after_word_does_not_count(engine: SafetyNet) -> None:
    assert fired(engine, "wuerde birne und apfel", "maybe_pair") is None
    assert fired(engine, "es klingt als wuerde birne und apfel", "maybe_pair") == "maybe_pair"


def test_a_hash_in_not_after_stands_for_any_number(engine: SafetyNet) -> None:
    assert fired(engine, "seit jahre apfel birne", "years_pair") is None
    assert fired(engine, "sie ist 82 jahre, apfel birne", "years_pair") == "years_pair"
    assert fired(engine, "sie ist zwei jahre, apfel birne", "years_pair") is None  # a number word is no digit


# ------------------------------------------------------------------ the review's defects on the real rules
FIRE = [
    # 1. reported thought acts only in its clause and is lifted by a now-word
    "ich dachte ich sterbe, er würgt mich gerade",
    "ich dachte er bringt mich jetzt um, er hat ein messer in der hand",
    "ich dachte erst es ist ein böller aber jetzt liegt einer am boden und blutet",
    # 2. a clause guard drops only its own clause's words
    "die frau war bewusstlos, jetzt atmet sie nicht mehr",
    # 3. seasons are not the past
    "im winter ist mein sohn beim schlittschuhlaufen ins eis eingebrochen, hilfe er kommt nicht raus",
    # 4. a bare "wenn" with a now-word is lifted
    "darf man eingreifen wenn grad einer vor meinem fenster eine frau würgt?",
    # 7. an age still counts as a worry
    "meine nachbarin ist 80 und sonst jeden morgen auf dem balkon. heute nicht, die zeitung liegt noch vor der tür und sie macht nicht auf",
    # the pill rules still fire on an overdose
    "hab grad 15 tabletten von mama genommen",
    "ist es schlimm wenn man 20 tabletten genommen hat",
    # 8. a purchase or a prescription does not hide an overdose (second review: these were pinned quiet)
    "hab 30 tabletten gekauft und bin total schwindlig",
    "rezept für 50 tabletten genommen, hilfe",
    # 9. a lost child at the station (second review: was pinned quiet; "ist weg seit" with a public place fires)
    "frankfurt am main, mein sohn ist weg seit dem bahnhof",
    # 9. a motorway still counts with "auf der"
    "auf der a3 richtung köln kommt einer in falscher richtung",
    "ich verstecke mich unterm bett, einer ist in der wohnung und ich hör schritte",
    # self-harm: "würde" with a now-word is a risk, not a quiz
    "würde es jemand merken wenn ich jetzt vom dach springe",
    # the classes added for the fresh batch
    "papa hat mama auf den boden geschubst und jetzt tritt er sie",
    "ein fremder steht in meiner küche und ich bin allein",
    "mein freund krampft am boden und hat schaum vorm mund",
    "mein vater hat sich mit einem strick in die garage gesetzt und sich von uns verabschiedet",
]

QUIET = [
    # 1. reported thought in the clause the rule matched
    "ich dachte er bringt mich um, aber er ist dann gegangen",
    # 4. never lifted after würde, theoretisch, angenommen, was würdet ihr, was wäre wenn; "grad" after a number is degrees
    "was würdet ihr machen wenn grad einer mit messer vor der tür steht",
    "theoretisch, wenn gerade einer mit einem messer vor der tür steht, was dann",
    "angenommen einer schlägt grad auf einen am boden ein, darf ich helfen",
    "was wäre wenn gerade einer mit ner waffe in die schule kommt",
    "würde die polizei kommen wenn gerade einer mit messer rumläuft",
    "bei 30 grad darf man den hund im auto lassen wenn einer mit messer droht",
    "wenn bei 30 grad einer mit messer rumläuft was macht ihr",
    # 5. a story told with "war"
    "der mann war betrunken, er hat seine frau mit dem messer bedroht, das war schlimm",
    # 6. sweets and pets
    "ich hab eine ganze packung chips gegessen mir ist voll übel",
    "der hund hat 12 tabletten gefressen was soll ich tun hilfe",
    "unser hund hat 15 ibuprofen gefressen, ist das tödlich",
    "die katze hat eine ganze packung tabletten erwischt, hilfe",
    # 7. "ist 11" is a time, not an age
    "es ist 11 uhr und mein nachbar macht nicht auf, komisch",
    "mein nachbar macht nicht auf, es ist 11",
    # 8. daily medication (a habit word: even "hilfe" does not lift it)
    "ich nehme 14 tabletten am tag, ist das zu viel",
    "ich muss 12 tabletten pro tag nehmen, hilfe das ist so viel",
    "hab 20 tabletten vom arzt verschrieben bekommen",
    # 9. everyday words
    "der a3 von meinem nachbarn steht in der falschen richtung in der einfahrt",
    "die zahlen auf der karte a3 zeigen in die falsche richtung",
    "die katze liegt unterm bett und ich hör schritte im flur, das ist mein mann",
    # 10. "aber nicht" negates the clause it follows
    "er blutet aber nicht",
    "er hat sich geschnitten, blutet aber nicht",
    "sie ist gestürzt aber nicht bewusstlos",
    "er ist umgekippt aber nicht bewusstlos, er redet wieder",
    # the rules added for the fresh batch: separable verbs are not blows, a worker in the flat is no intruder
    "jetzt haut mein papa einfach ab und lässt uns mit dem chaos allein",
    "jetzt haut der typ einfach ab ohne zu zahlen",
    "jetzt schlägt meine mama vor, dass wir umziehen",
    "jetzt tritt der mann aus der partei aus",
    "jetzt schlägt das wetter um, die kinder sollen rein",
    "ein fremder mann steht in meinem flur, es ist der ableser von den stadtwerken",
    "in my country police come fast when someone has knife, here i wait for answer of my email since two week",
    "ich kann nicht mehr, diese baustelle vor meinem fenster bringt mich noch um, seit 6 uhr bohren die",
]


# ------------------------------------------------------------------ the second review (defects of the re-applied round)
FIRE_SECOND = [
    # 1. a break-in verb with a door or window in its clause
    "er hat gerade die tür eingetreten",
    "jemand hat gerade unsere kellertür aufgestemmt",
    "soeben hat ein fremder mann meine balkontür aufgedrückt und steht jetzt im wohnzimmer",
    "einer ist grad durchs fenster reingestiegen",
    # 2. "breaking down" with the door
    "someone is breaking down the door right now",
    "a man is trying to break down my door",
    # 3. "hit me" still counts
    "my husband hit me right now please help",
    # 4. a purchase or prescription, lifted by "alle", "auf einmal", dizziness or a call for help
    "hab 30 schlaftabletten vom arzt genommen, mir ist schwindelig",
    "die tabletten vom arzt alle auf einmal geschluckt",
    "hab mir 40 tabletten gekauft und alle geschluckt",
    "hab 30 schlaftabletten vom arzt genommen. mir ist so schwindelig",
    # 5. "hinterher" is not the past
    "der typ rennt mir mit einem messer hinterher",
    # 6. a weapon named in a "hatte" clause, the threat told now in another
    "er hatte ein messer, jetzt hält er es mir an den hals",
    "der typ hatte ne pistole in der hand und zielt jetzt auf die kassiererin",
    # 7. "hatte", "das war" are past only in their own clause
    "wir hatten einen unfall, der andere fahrer ist eingeklemmt und blutet",
    "wir hatten streit, er hat ein messer und bedroht mich",
    "ich hatte solche angst, er steht mit einem messer vor meiner tür",
    "das war ein riesen knall, der fahrer ist eingeklemmt und blutet",
    "jetzt atmet er nicht mehr",
    "jetzt atmet sie nicht mehr",
    # 8. the face or mouth hangs
    "sein mund hängt schief und er redet komisch",
    "papas mundwinkel hängt auf einer seite runter und er lallt",
    # 10. polite or urgent requests with a now-word, doing first aid, "keeps" with urgency
    "könnten sie bitte schnell kommen mein mann schlägt mich gerade mit dem gürtel",
    "could you please come, there is a man with a knife in my house right now",
    "wie lange braucht ihr noch er tritt gerade die tür ein",
    "ich mache gerade erste hilfe aber er atmet nicht mehr",
    "he keeps stabbing him, hurry",
    "wir sind im einkaufszentrum und meine tochter ist auf einmal weg",
    "could you send someone, my husband is beating me right now",
    "grad ist einer über den balkon in unsere wohnung eingestiegen",
    "mir läuft seit 10 min einer hinterher, ich hab voll angst",
]

QUIET_SECOND = [
    # 1. the same verbs in everyday German
    "gerade ist ein fehler aufgetreten",
    "ich bin hingefallen und hab mir grad das knie aufgeschlagen",
    "wir haben gerade das zelt aufgeschlagen",
    "ich bin gerade in den sportverein eingetreten",
    "bin grad ins auto reingestiegen",
    "hab mir gerade den pickel aufgedrückt",
    "hab grad die dose aufgestemmt",
    "wir sind gerade aufgebrochen zum wandern",
    "bin gerade in den bus eingestiegen",
    "der blitz hat gerade eingeschlagen",
    "wir sind gerade aufgebrochen, die haustür ist abgeschlossen",
    # 2. breaking down
    "i am breaking down right now, exams are killing me",
    "my car is breaking down right now",
    # 3. games and accidents
    "my brother beat me at fifa right now haha",
    "my brother beats me at fifa right now lol",
    "i hit my head on the door right now",
    "someone hit my car right now in the parking lot",
    "er schlägt mich gerade im schach, zum dritten mal",
    # 7. how someone breathes, not that they stopped
    "jetzt atmet er nicht mehr so laut, die nasentropfen helfen",
    "sie atmet nicht mehr durch die nase seit der erkältung",
    # 8. a picture hangs crooked
    "das bild hängt schief im flur",
    "das regal hängt schief seit dem umzug",
    # 9. a now-word next to "meinte" tells when it was said
    "meinte gerade mein bruder er bringt mich um wenn ich seine chips esse",
    # 10. "würde", "theoretisch", "was wäre wenn" stay strict; "could" without a now-word stays a question
    "würde die polizei kommen wenn gerade einer mit messer rumläuft",
    "could you tell me what happens if someone has a knife",
    "was ist erste hilfe wenn einer nicht mehr atmet",
    "my neighbour keeps hitting the wall with a hammer",
    # a child gone, but not lost
    "mein sohn ist weg zum bahnhof, er fährt heute zur oma",
    # the look-alikes found while fixing: following, a storm, a cat, a dream, a pinched finger, a punching bag,
    # asking how to take prescribed pills ("hilfe" lifts `prescribed`, not `dosage`)
    "der hund läuft gleich hinterher wenn ich den ball werfe",
    "the window got smashed by the storm right now, glass everywhere",
    "meine katze ist grad durchs fenster reingeklettert, total nass",
    "ich hatte gerade einen albtraum, ein typ mit messer stand vor meiner tür",
    "gerade ist bei uns im büro die tür zugefallen, hab mir den finger eingeklemmt",
    "would you believe it, my son is hitting the punching bag right now",
    "mein arzt hat mir 30 tabletten verschrieben, hilfe wie soll ich die alle schlucken",
    "ich hab 20 tabletten vom arzt bekommen und weiß nicht wie viel ich nehmen soll, hilfe",
    "i just hit my knee on the table right now, that hurt so bad",
]


# ------------------------------------------------------------------ the third review (defects of the second fix round)
FIRE_THIRD = [
    # 1. a door or window forced open, the verb at the end of the clause or after a relative clause
    "jemand hat die balkontür aufgebrochen und ist jetzt noch drin",
    "jemand hat die wohnungstür aufgebrochen, ich hör ihn noch im flur",
    "einer hat grad die tür und das fenster aufgebrochen",
    "grad hat jemand bei uns die kellertür, die zum garten geht, aufgebrochen",
    # 3. dizziness still lifts a purchase message-wide
    "hab 30 tabletten gekauft und bin total schwindlig",
    # 4. "grad" after a house number is "gerade", not degrees
    "hauptstraße 12 grad wird einer verprügelt",
    # 7. formal pleas, "jetzt", "wird eingebrochen", public places, "is missing", climbing through
    "bitte kommen sie, mein mann schlägt mich",
    "bei uns wird eingebrochen",
    "my son is missing at the beach",
    "meine tochter ist weg, wir sind im freibad",
    "someone is climbing through my window right now",
    "einer ist gerade durchs fenster gestiegen",
]

QUIET_THIRD = [
    # 2. "wir" is not "wirr"
    "wir haben 20 tabletten vom arzt verschrieben bekommen",
    "wir haben 12 tabletten gekauft für den urlaub",
    "wir haben 30 tabletten, es ist ok",
    # 3. "hilfe" in another clause does not lift a prescription; pills spread over days
    "der arzt hat mir 20 tabletten verschrieben, ich hab heute die erste genommen, danke für die hilfe",
    "ich habe über 10 tage 20 tabletten genommen, ist das normal",
    "in 10 tagen hab ich 20 tabletten genommen",
    # 5. locked out, or a cupboard door
    "i just climbed in through the window because i forgot my keys",
    "gerade hat meine nachbarin ihre tür eingetreten weil sie sich ausgesperrt hat lol",
    "mein bruder hat gerade die schranktür aufgebrochen weil der schlüssel weg war",
    # 6. pretending
    "mein kleiner bruder tut so als ob er nicht atmet, nervig",
    # 7. the same words in everyday talk
    "kommen sie bitte morgen vorbei wegen der anzeige",
    "wir waren heute im zoo, war schön",
]


NEARBY = """
words:
  fruit: [apfel]
  pear: [birne]
  loud: [laut]
  soft: [leise]
guards:
  bought:
    lifted_by: [loud]
    lifted_nearby: [soft]
    lifted_in: message
    words: [gekauft]
rules:
  - {name: bought_pair, intent: emergency, all: [fruit, pear], unless: [bought], examples: [apfel birne]}
"""


@pytest.mark.parametrize(
    ("text", "rule"),
    [("apfel birne gekauft, laut", "bought_pair"), ("apfel birne gekauft leise", "bought_pair"),
     ("apfel birne gekauft, leise", "bought_pair"), ("apfel birne gekauft, es war leise", None),
     ("apfel birne gekauft", None)],
)
def test_a_nearby_lifting_word_counts_only_in_a_matched_clause(text: str, rule: str | None) -> None:
    net = SafetyNet.from_doc(yaml.safe_load(NEARBY), Path("nearby.yml"))
    assert fired(net, text) == rule


def test_a_degree_reading_needs_a_temperature_word_or_a_clause_end() -> None:
    from bot.safety_lexicon import tokenize

    assert "celsius" in tokenize("bei 30 grad im auto").folded
    assert "celsius" in tokenize("heute 30 grad, schön").folded
    assert "celsius" not in tokenize("hauptstraße 12 grad wird einer verprügelt").folded


@pytest.mark.parametrize("extra", ["within: clause", "lifted_by: [fruit]", "not_after: [als]"])
def test_a_near_guard_refuses_keys_it_would_ignore(extra: str) -> None:
    doc = yaml.safe_load(f"words:\n  fruit: [apfel]\nguards:\n  no:\n    near: 1\n    {extra}\n    words: [kein]\nrules: []\n")
    with pytest.raises(ValueError, match="near"):
        SafetyNet.from_doc(doc, Path("near.yml"))


# ------------------------------------------------------------------ session 9: the reviews' known misses, by class
FIRE_NINTH = [
    # 1. strangling in the plain present is acute; a blow with a plea; a blow with "jetzt"; dialect
    "mein mann würgt mich",
    "er würgt mich jetzt",
    "er drückt mir die kehle zu",
    "hilfe er schlägt mich",
    "bitte er schlägt mich",
    "er schlägt sie jetzt",
    "der oide schlogt mei muatta grad",
    "er schlägt mich!!",
    "mein mann schlägt mich!",
    # 2. polite requests are not hypotheticals
    "würden sie bitte kommen, bei uns wird eingebrochen",
    "ich würde sie bitten schnell zu kommen, mein mann schlägt mich",
    "könnten sie bitte jemanden schicken, da prügeln sich zwei",
    # 3. a car door forced now is still a break-in
    "jemand hat gerade meine autotür aufgebrochen",
    # 4. a forced door, the writer hiding in the house
    "jemand hat die haustür aufgebrochen, ich bin oben im schlafzimmer",
]

QUIET_NINTH = [
    # 1. a habit, a suggestion, a door slammed
    "er schlägt mich seit jahren",
    "er schlägt mich immer wieder",
    "er schlägt mich manchmal",
    "er schlägt mich jedes mal wenn er trinkt",
    "früher hat er mich geschlagen",
    "mein freund schlägt mich oft",
    "jetzt schlägt mama vor dass wir umziehen",
    "jetzt schlägt er die tür zu",
    "er schlägt mich immer beim fifa!!",
    "er schlägt mich seit jahren!",
    "die musik haut mich um!!",
    # 3. furniture doors
    "jemand hat gerade die schranktür aufgebrochen",
    "jemand hat gerade die kühlschranktür aufgebrochen",
    # 4. away from home
    "jemand hat die haustür aufgebrochen, als wir im urlaub waren",
    # 6. a past robbery with "hatte" in its second sentence; pills spread over days only ask
    "letzten monat wurde ich überfallen. der typ hatte ein messer und hat mir das handy weggenommen. wie bekomme ich eine kopie der anzeige?",
    "hab in 2 tagen 40 tabletten genommen",
    # 1. a blow told alone only asks
    "er schlägt mich",
]

ASK_NINTH = [
    "er schlägt mich",
    "ich stehe am gleis und warte auf den nächsten zug, tschüss",
    "hab in 2 tagen 40 tabletten genommen",
    "jemand hat die hintertür aufgebrochen und ich bin allein zu hause",
]

SILENT_NINTH = [
    "er schlägt mich seit jahren",
    "er schlägt mich immer wieder",
    "jetzt schlägt er die tür zu",
    "jemand hat die haustür aufgebrochen, als wir im urlaub waren",
    "ich nehme 12 tabletten am tag wegen herz und blutdruck",
    "stehe am gleis, der zug hat verspätung",
]


BESIDE = """
words:
  fruit: [apfel]
  pear: [birne]
  polite: [bitte kommen]
  now: [jetzt]
guards:
  modal:
    not_beside: [polite]
    words: [wuerden]
  habit:
    lifted_by: [now]
    lifted_beside: false
    words: [oft]
rules:
  - {name: pair, intent: emergency, all: [fruit, pear], unless: [modal, habit], examples: [apfel birne]}
"""


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("wuerden sie bitte kommen apfel birne", "pair"),  # the modal right beside the call: a request
        ("bitte kommen, wuerden apfel birne", None),  # the call in another clause lifts nothing
        ("wuerden apfel und birne und dann und so bitte kommen", None),  # too far from the call
        ("oft birne, jetzt apfel birne", "pair"),  # the now-word told with the act, in another clause than the habit
        ("apfel birne oft jetzt", None),  # a now-word in the habit's own clause is no now
        ("oft apfel birne, jetzt birne", None),  # a lifted habit's clause lends no words: the apple is only in the habit
        ("bitte kommen wuerden apfel birne", None),  # a modal after the call is not the request's
        ("bitte kommen wuerden sie apfel birne", "pair"),  # ... unless it addresses someone ("kommen, würden sie")
    ],
)
def test_a_not_beside_list_excuses_only_a_guard_word_right_beside_it(text: str, rule: str | None) -> None:
    assert fired(SafetyNet.from_doc(yaml.safe_load(BESIDE), Path("beside.yml")), text) == rule


ELSEWHERE = BESIDE.replace("    lifted_beside: false\n    words: [oft]", "    lifted_beside: false\n    lifted_in: message\n    words: [oft]")


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("oft apfel birne", None),  # the guard word in the sentence, nothing lifts it
        ("oft, jetzt, apfel birne", "pair"),  # a lifting word in any other clause, not only one the rule matched
        ("oft jetzt apfel birne", None),  # a lifting word in the guard word's own clause lifts nothing
        ("oft apfel, jetzt, birne", None),  # lifted, but the guard's clause lends no words: the apple is only there
    ],
)
def test_a_guard_lifted_anywhere_else_in_the_message(text: str, rule: str | None) -> None:
    """gaming: "ich zock grad, mein opa ist gestürzt und blutet" (family in another clause lifts the game)."""
    assert fired(SafetyNet.from_doc(yaml.safe_load(ELSEWHERE), Path("elsewhere.yml")), text) == rule


@pytest.mark.parametrize(
    ("guard", "option"),
    [("{words: [oft], lifted_everywhere: [now]}", "lifted_everywhere"), ("{words: [oft], not_beside: [nowhere]}", "not_beside"),
     ("{words: [oft], needs: [nowhere]}", "needs"), ("{words: [oft], dates_before: 0}", "dates_before"),
     ("{words: [oft], within: clause, dates_before: 8}", "dates_before")],
)
def test_a_bad_guard_option_is_named_in_the_error(guard: str, option: str) -> None:
    doc = yaml.safe_load(BESIDE.replace("  habit:\n    lifted_by: [now]\n    lifted_beside: false\n    words: [oft]", f"  habit: {guard}"))
    with pytest.raises(ValueError, match=option):
        SafetyNet.from_doc(doc, Path("bad.yml"))


# ------------------------------------------------------------------ session 19: a guard that brings companions
COMPANIONS = """
words:
  fruit: [apfel]
  pear: [birne]
guards:
  reported: {words: [im film], with: [show]}
  show: {within: clause, words: [folge]}
rules:
  - {name: pair, intent: emergency, all: [fruit, pear], unless: [reported], examples: [apfel birne]}
  - {name: bare, intent: emergency, all: [pear], max_words: 1, examples: [birne]}
"""


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("apfel birne im film", None),  # the guard the rule names
        ("in der folge apfel birne", None),  # its companion, which the rule gets without naming it
        ("in der folge, apfel birne", "pair"),  # the companion keeps its own scope: only its clause
    ],
)
def test_a_guard_with_companions_gives_them_to_every_rule_that_names_it(text: str, rule: str | None) -> None:
    """pl: every rule that names `reported` also needs the clause guards for a crime show retold."""
    net = SafetyNet.from_doc(yaml.safe_load(COMPANIONS), Path("companions.yml"))
    assert fired(net, text) == rule
    assert [r.unless for r in net.word_rules] == [("reported", "show"), ()]


@pytest.mark.parametrize(
    "companion", ["[nowhere]", "[reported]", "folge", "[show, nowhere]"],
)
def test_a_companion_that_is_no_other_guard_is_refused(companion: str) -> None:
    doc = yaml.safe_load(COMPANIONS.replace("with: [show]", f"with: {companion}"))
    with pytest.raises(ValueError, match="'with' must list other guards"):
        SafetyNet.from_doc(doc, Path("bad.yml"))


# ------------------------------------------------------------------ session 9: the review of the safety-net round, by class
FIRE_TENTH = [
    # 1. the polite modal beside a call to come is a request
    "could you send someone, my husband is beating me right now",
    "ich würde sie bitten schnell zu kommen, mein mann schlägt mich",
    # 7. a plea lifts "seit"/"danach"; "seit er reinkam" is an event
    "er würgt mich seit er reinkam hilfe",
    "er schlägt mich seit er heimkam, hilfe",
    # 8. a habit told earlier does not veto "jetzt" told with the act
    "seit ein paar wochen streiten wir viel, heute hat er getrunken, jetzt würgt er mich",
    # 9. fear counts like a plea
    "hallo polizei mein papa haut meine mama ganz doll ich hab angst ich bin 8",
    # the blows and the "!" still fire with a person
    "er schlägt meine mama!",
    "er würgt mich jetzt",
    "waldbrand am hang oberhalb vom campingplatz",
    # 12. a request to send someone, in any word order, beside the modal "könnten" is a request
    "hallo polizei ich wollte fragen ob sie jemanden schicken könnten da ist gerade ein mann durchs kellerfenster gestiegen",
    "hallo polizei könnten sie eine streife schicken da ist gerade ein mann durchs kellerfenster gestiegen",
    "könnten sie vorbeikommen, da steigt gerade einer durchs kellerfenster",
    "could you send a patrol, someone is climbing through my basement window right now",
    # 13. a train coming in is no travel talk beside a final farewell
    "ich steh am gleis, der zug fährt gleich ein. lebt wohl",
]

QUIET_TENTH = [
    # 1. wenn/falls/theoretisch/would are never lifted by a polite request
    "wenn mich jemand mit dem messer bedroht, was soll ich tun? bitte schicken sie mir infomaterial",
    "falls einer bei uns einbricht während wir schlafen, bitte kommen sie dann schnell?",
    "theoretisch: einer hat ein messer und bedroht mich gerade, bitte kommen",
    "bitte kommen sie, wenn er mich wieder schlägt",
    "please send me the form. what would you do if someone is stabbing someone right now",
    # 2. clothes, food and feelings
    "die krawatte würgt mich total",
    "der kragen würgt mich",
    "das essen würgt mich",
    "die angst würgt mich",
    # 3. "jetzt schlägt" without a person
    "jetzt schlägt die stunde der wahrheit",
    "jetzt schlägt es dreizehn",
    "jetzt tritt er in die fußstapfen seines vaters",
    "jetzt schlägt die bank zu",
    # 4. "!" on things
    "er schlägt meinen rekord!",
    "der schlägt meine bestzeit!",
    "papa schlägt meinen teddy!",
    "er tritt meine schuhe kaputt!",
    "tritt meinen verein bei!",
    "mein bruder haut mich!!",
    # 10. a door slams in public
    "die tür schlägt zu und ich steh draußen",
    # 11. the data helper's classes: a fire word's near miss, a past break-in, shaking afterwards
    "parkplatz am waldrand",
    "der einbruch bei uns ist jetzt eine woche her",
    "ich hab die anzeige vom einbruch",
    "aussagen wegen dem überfall im oktober",
    "ausgeraubt worden und zittere immer noch",
    # 12. a request for a form stays quiet with a hypothetical or without danger
    "ob sie mir das formular schicken könnten, wenn gerade einer durchs kellerfenster steigt",
    "könnten sie mir das formular schicken, was wäre wenn einer gerade durchs kellerfenster steigt",
    "ob sie mir das formular schicken könnten",
]

ASK_TENTH = [
    "mein bruder haut mich!!",
    "ich steh am bahnsteig. lebt wohl",
    "ich stehe am gleis und warte auf den nächsten zug, tschüss",
    # 14. a farewell to everyone in the next sentence of a short message at a danger spot
    "on the bridge now. bye everyone",
    "bin auf der brücke. lebt wohl ihr lieben",
]

SILENT_TENTH = [
    # 5. everyday sign-offs at a platform, a bridge, a roof
    "tschüss, ich steh am bahnsteig und der zug kommt gleich",
    "bin am gleis 7, bis später, tschau",
    "auf der brücke ist ein stau, macht es gut",
    "ich arbeite heute auf dem dach, tschüss bis morgen",
    "treffen uns auf der brücke, ciao",
    # 6. games, school, babies, idioms, suggestions
    "sie schlägt mich in mathe",
    "er schlägt mich im wettrennen",
    "sie schlägt mich beim kartenspielen",
    "er schlägt mich um längen beim laufen",
    "beim kissenschlacht haut mich meine schwester",
    "das haut mich vom hocker",
    "mein baby tritt mich in den bauch",
    "mein kind tritt mich im schlaf",
    "mein mann schlägt mich vor als kandidatin",
    "er schlägt meine idee vor im meeting",
    # 2. and 3. are not even asked about
    "die krawatte würgt mich total",
    "jetzt schlägt die stunde der wahrheit",
    # 13. seeing someone off and travel questions at a platform
    "wir verabschieden uns am bahnsteig, ciao ihr lieben",
    "stehe auf dem bahnsteig, wann kommt der nächste zug nach köln? danke und tschüss",
    "bin am gleis, wann fährt der nächste nach hamburg? tschau",
    # 14. a group sign-off in everyday talk
    "on the bridge now, stuck in traffic. bye everyone, see you at dinner",
]


# ------------------------------------------------------------------ session 9: the second review (issue #11), by class
FIRE_ELEVENTH = [
    # 1. a now-word after a habit told in another clause
    "seit ein paar wochen streiten wir viel, heute hat er getrunken, jetzt würgt er mich",
    "früher hat er mich oft geschlagen, jetzt würgt er mich",
    # 2. a blow cried out with "!", whatever the next sentence says
    "er schlägt mich! wenn ihr nicht kommt bringt er mich um",
    "er schlägt mich! ich kann nicht weg",
    "er schlägt mich! bin bei meiner mutter in der wohnung",
    "er schlägt mich! was soll ich tun?",
    # 5. a person strangling a baby
    "er würgt das baby",
    "mein freund würgt unser kind",
    # 6. "eben" with the victim or the blow, a blow "reingehauen", smothering, a punch just now
    "er hat mich eben geschlagen, hilfe",
    "mein mann hat mich eben schon wieder geschlagen",
    "er hat mir eben eine reingehauen",
    "er drückt mir gerade ein kissen aufs gesicht",
    "he just punched me",
]

QUIET_ELEVENTH = [
    # 1. the habit's clause lends no words to a now told in another clause
    "früher hat er mich oft gewürgt, jetzt würgt er mich nicht mehr",
    "früher schlug er mich oft, jetzt schlägt er die kinder nicht mehr",
    # 4. a modal after the call, a document quoted
    "könntet ihr bitte jemanden schicken der würde mich jetzt schlagen",
    "könnten sie bitte die anzeige schicken, in der steht, dass er mich jetzt würgt",
    # 5. a baby or a pet that retches
    "die katze würgt gerade ein haarknäuel hoch",
    "das baby würgt gerade",
    "mein baby würgt jetzt immer beim stillen",
    # 6. "eben" as "simply", eating heartily, a pillow to sleep, a ball
    "das ist eben so, er schlägt halt gern mit der faust auf den tisch",
    "er hat mich eben nicht geschlagen",
    "ich hab beim essen richtig reingehauen",
    "ich leg mir ein kissen aufs gesicht zum schlafen",
    "he just hit me with the ball, so unfair lol",
    "he just punched the wall",
]

SILENT_ELEVENTH = [
    # 2. a score or a game with "!"
    "er schlägt mich im tennis!",
    "er schlägt mich 6:0!",
    "er haut mich 3-1!",
    "er schlägt mich jede runde!",
    "er schlägt mich in mario kart!",
    # 3. Bavarian sign-offs on a platform
    "servus, i bin jetzt am bahnsteig, pfiat eich bis heut abend",
    "bin am bahnsteig, pfiat di, bis morgn",
    "servus, am gleis 3, bis spaeda",
]


# ------------------------------------------------------------------ session 10: fresh look-alikes, by class (issue #11)
FIRE_TWELFTH = [
    # 1. a stranger broke the door open (the locksmith guard must not reach these)
    "jemand hat die wohnungstür aufgebrochen, ich bin drin",
    "einer hat grad unsere haustür aufgebrochen und ist jetzt drin",
]

QUIET_TWELFTH = [
    # 1. a tradesman opened one's own door
    "der schlüsseldienst hat die wohnungstür aufgebrochen, ich bin jetzt drin",
    "der schlüsseldienst hat grad die haustür aufgebrochen, jetzt bin ich drin, danke trotzdem",
    # 2. filing bars in a game or a film
    "in dem spiel muss man durch gärten schleichen und gitter vom kellerfenster feilen, mega",
    "im film sägt der held gerade die gitter vom kellerfenster ab",
    # 3. a small cut that bleeds, told as all right
    "hab mir beim kochen in den daumen geschnitten, blutet stark aber geht schon",
]


# ------------------------------------------------------------------ session 9: a past told in another sentence (issue #11)
DATED = """
words:
  fruit: [apfel]
  pear: [birne]
  now: [jetzt]
  when: [montag]
  again: [auch]
guards:
  dated:
    needs: [when]
    dates_before: 5
    lifted_by: [now]
    not_beside: [again]
    words: [das war]
rules:
  - {name: pair, intent: emergency, all: [fruit, pear], unless: [dated], examples: [apfel birne]}
"""


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("apfel birne. das war montag.", None),  # a short sentence that only dates the story before it
        ("apfel birne. kiwi. das war am montag.", None),  # ... and every sentence before it
        ("apfel birne. das war jetzt montag.", None),  # a now-word in the dating clause itself dates nothing now
        ("das war montag. apfel birne.", "pair"),  # a sentence after the date is not dated
        ("apfel birne. das war es.", "pair"),  # "das war" without a time word dates nothing
        ("apfel birne. das war am montag und kiwi und mango.", "pair"),  # too long to only date the story
        ("apfel birne. das war montag. jetzt kiwi", "pair"),  # a now-word in any other clause lifts it
        ("apfel birne. das war montag, jetzt kiwi", "pair"),
        ("apfel birne. das war montag auch", "pair"),  # the date of a habit, not of a story that is over
    ],
)
def test_a_sentence_that_only_dates_the_story_makes_the_sentences_before_it_past(text: str, rule: str | None) -> None:
    assert fired(SafetyNet.from_doc(yaml.safe_load(DATED), Path("dated.yml")), text) == rule


# Crimes that are over, with the time in a sentence of its own: they all escalated before (110 and an alert).
QUIET_DATED = [
    "ich wurde mit einem messer bedroht. das war am donnerstag.",
    "überfall an der haltestelle, der typ hatte ne pistole. passiert ist das letzten freitag",
    "einer hat mich mit dem messer angegriffen. ist jetzt zwei wochen her. wie zeige ich das an?",
    "mein nachbar hat mich mit einer pistole bedroht. das war vorgestern. was kann ich tun?",
    "der typ hat mir ein messer an den hals gehalten!! das war letzten samstag im park",
    "zwei maskierte mit pistole haben den kiosk überfallen. passiert ist das am montag abend. gibts schon was neues?",
    "jemand hat mich mit einer waffe bedroht. vor drei tagen war das.",
    "er hat mich gewürgt bis ich keine luft mehr bekam. ist schon eine woche her. kann ich das noch anzeigen",
    "someone attacked me with a knife. it happened last week. how do i report it?",
    "a guy pulled a gun on me at the gas station. that was on friday. can i still report it?",
    "a man threatened me with a knife on the bus. it was last night. should i go to the police?",
    "mi hot oaner mit am messer bedroht. des war am sonntag.",
    "da isch eine mit emne messer uf mi los. das isch am samschtig gsi.",
    "hallo, ich wurde auf dem heimweg von zwei typen mit einem messer bedroht und die wollten mein handy. das war am "
    "freitag so gegen elf. ich hab mich nicht getraut anzeige zu machen, geht das noch? danke",
]

# The same stories with a sentence told now, a plea, or the date of a habit: they still escalate.
FIRE_DATED = [
    "ich wurde mit einem messer bedroht. das war am donnerstag. jetzt steht er mit dem messer vor der tür",
    "einer hat mich mit dem messer angegriffen. ist jetzt zwei wochen her. gerade bedroht er mich wieder mit dem messer",
    "mein nachbar hat mich mit einer pistole bedroht. das war vorgestern. jetzt steht er mit der pistole im treppenhaus",
    "der typ hat mir ein messer an den hals gehalten. das war letzten samstag. gerade hält er es mir wieder an den hals",
    "gestern hat er mich bedroht. gerade schlägt er gegen die tür",
    "er hat mich geschlagen und getreten. ist jetzt zwei wochen her. gerade schlägt er mich wieder",
    "das war letzte woche, jetzt hält er ein messer an meinen hals",
    "er hat mich mit dem messer bedroht. das war am montag. bitte kommt schnell er hat wieder ein messer",
    "er hat ein messer und bedroht mich. das war letzte woche auch schon so",
    "jemand ist mit einem messer auf mich los. das war gestern. heute steht er wieder mit dem messer vor meiner tür",
    "someone attacked me with a knife. it happened last week. now he is outside my door with a knife",
    "a man threatened me with a knife on the bus. it was last night. he is on the bus again right now with the knife",
    "he has a knife and threatens me. it was like that last week too",
    "mi hot oaner mit am messer bedroht. des war am sonntag. jetzt steht er grad mit dem messer vor da tür",
    "mein mann schlägt mich. das war gestern. hilfe",
    "da ist einer mit einer pistole im bus. das war gestern schon. ich hab angst",
    # self-harm told in the past sentence is still acute
    "ich will mich umbringen. das war gestern.",
    "ich hab 40 tabletten geschluckt. das war gestern abend.",
]


# Session 10 (issue #11), by class: Swiss German blows and screams ("schlaht", "brüelet um hilf"), "ballern" as
# shooting with a weapon or a now-word, "immer wieder" for the blows of one scene in a public place, shots judged
# with "waren das sicher", a bare plea at the end of the habit's clause, a polite request beside an armed person.
FIRE_THIRTEENTH = [
    'bi üs im huus schlaht de nachbar sini frau, si brüelet um hilf',
    'im hinterhof schloht eine sini fründin, si brüelt um hilf',
    'nebedra brüelet e frau um hilf',
    'der ballert vom balkon mit ner waffe rum',
    'da ballert einer rum',
    'er ballert durchs fenster rein mit ner waffe',
    'auf der party ballert einer mit ner pistole rum',
    'auf dem parkplatz ballert gerade einer mit ner pistole in die luft',
    'vor der disco haut einer einer frau immer wieder den kopf gegen die wand',
    'am bahnhof schlägt ein typ einem mann immer wieder den kopf auf den boden',
    'knallt es gerade überall in der siedlung, schüsse waren das sicher, leute rennen weg',
    'gerade hat es zweimal laut geknallt, das waren eindeutig schüsse, alle rennen weg',
    'er schlägt mich und sagt danach nichts hilfe',
    'er tritt mich und lacht danach hilfe',
    'ich würde sie bitten sofort zu kommen, er hat ein messer',
    'könnten sie bitte schnell kommen, mein nachbar hat eine pistole',
]

# ... and their everyday look-alikes: "ballern" for fireworks, games, music and drinks, the habit "immer wieder",
# a bang judged in a story, the habit told after a quarrel, a true hypothetical, a Swiss baby crying.
QUIET_THIRTEENTH = [
    'silvester ballern wir wieder mit raketen im garten',
    'wir ballern uns heute abend in call of duty',
    'ballermann auf mallorca war der beste urlaub',
    'die musik ballert gerade richtig laut',
    'der schnaps ballert ganz schön rein',
    'der bass vom nachbarn ballert seit zwei stunden, kann ich mich beschweren?',
    'der neue track ballert rein',
    'mein mann schlägt mich immer wieder',
    'mein sohn haut oft den kopf gegen die wand wenn er wütend ist',
    'vor der disco gibt es immer wieder schlägereien, könnt ihr da mal streife fahren?',
    'gestern hat es geknallt, das waren sicher nur böller',
    'das war sicher ein schuss im film',
    'er würgt mich beim streiten und sagt danach es tut ihm leid',
    'er schlägt mich und danach muss ich mir hilfe holen, wo gibt es beratung',
    'würde er ein messer haben, würde ich sie anrufen',
    'würden sie jemanden schicken wenn einer ein messer hat?',
    's chind brüelet will es hunger het',
    'mis baby brüelet die ganzi nacht, ich bi so müed',
]


PATTERN = """
emergency:
  - name: cried_out
    match: 'apfel!'
    unless: 'lol'
    unless_in_sentence: 'nicht'
"""


@pytest.mark.parametrize(("text", "rule"), [("apfel!", "cried_out"), ("apfel! ich kann nicht weg", "cried_out"),
                                            ("nicht der apfel!", None), ("apfel! lol", None)])
def test_a_patterns_sentence_veto_acts_only_in_the_sentence_of_the_match(text: str, rule: str | None) -> None:
    hit = SafetyNet.from_doc(yaml.safe_load(PATTERN), Path("pattern.yml")).check(text)
    assert (hit.rule if hit else None) == rule


# Every review's cases, on the real rules: FIRE escalates, QUIET does not escalate (it may ask),
# ASK asks "in danger?", SILENT is neither escalated nor asked about.
@pytest.mark.parametrize("text", FIRE + FIRE_SECOND + FIRE_THIRD + FIRE_NINTH + FIRE_TENTH + FIRE_ELEVENTH + FIRE_TWELFTH + FIRE_DATED + FIRE_THIRTEENTH)
def test_the_reviews_cases_of_danger_fire(safety_net: SafetyNet, text: str) -> None:
    assert safety_net.check(text) is not None, text


@pytest.mark.parametrize("text", QUIET + QUIET_SECOND + QUIET_THIRD + QUIET_NINTH + QUIET_TENTH + QUIET_ELEVENTH + QUIET_TWELFTH + QUIET_DATED + QUIET_THIRTEENTH)
def test_the_reviews_cases_of_everyday_talk_stay_quiet(safety_net: SafetyNet, text: str) -> None:
    hit = safety_net.check(text)
    assert hit is None, f"{hit.rule if hit else ''}: {text}"


@pytest.mark.parametrize("text", ASK_NINTH + ASK_TENTH)
def test_the_reviews_weaker_signs_make_the_bot_ask(safety_net: SafetyNet, text: str) -> None:
    hit = safety_net.assess(text)
    assert hit is not None and hit.action == "check", f"{hit}: {text}"


@pytest.mark.parametrize("text", SILENT_NINTH + SILENT_TENTH + SILENT_ELEVENTH)
def test_the_reviews_habits_games_and_sign_offs_are_not_even_asked_about(safety_net: SafetyNet, text: str) -> None:
    hit = safety_net.assess(text)
    assert hit is None, f"{hit.rule if hit else ''}: {text}"


# Session 15: a negation word inside a phrase the rule itself uses belongs to that phrase ("atmet nicht",
# Persian "hooshyar nist"), so it does not veto the rule's other words as a negation would.
NEGATED_PHRASE = """
words:
  hurt: [blutet]
  still: [atmet nicht]
  help: [hilfe]
guards:
  negation:
    near: 2
    after: [nicht]
    words: [nicht, kein]
rules:
  - {name: hurt_and_still, intent: emergency, all: [hurt], any: [still, help], unless: [negation], examples: [er blutet hilfe]}
"""


@pytest.mark.parametrize(
    ("text", "rule"),
    [("er blutet atmet nicht", "hurt_and_still"), ("er blutet, atmet nicht", "hurt_and_still"),
     ("er blutet nicht, hilfe", None), ("kein blutet hilfe", None)],
)
def test_a_negation_inside_a_phrase_the_rule_uses_is_no_veto(text: str, rule: str | None) -> None:
    net = SafetyNet.from_doc(yaml.safe_load(NEGATED_PHRASE), Path("negated.yml"))
    assert fired(net, text) == rule
