"""The refusal check of issue 6 gives the same answer as the one it replaced.

``verify.is_refusal`` used to test 18 coarse cues, then search the whole 22-branch
regex (~150 µs on a 600-character answer, and it ran twice per answer).  It now
searches only the branches whose own cue is in the text.  Equality rests on two
facts, both checked here, plus a differential test over a corpus:

* every match of a phrase contains one of its cues, as a plain substring of the
  lower-cased text - unless the text holds a character that ``re.IGNORECASE``
  folds onto a cue letter (``verify._FOLDS``; derived here from all of Unicode),
  and such a text takes the old path;
* every cue contains one of the old coarse cues (so the old pre-filter never said
  no where the regex says yes).
"""

from __future__ import annotations

import random
import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from interlock.runtime import verify

# ----------------------------------------------------------------- the old check, verbatim

_OLD_HEAD = 600
_OLD_REFUSAL = re.compile("|".join((
    # English
    r"\bi(?:'m| am) (?:sorry|afraid),? (?:but )?i (?:can't|cannot|can not|won't|am unable"
    r"|'m unable|am not able|'m not able)",
    r"^\W*(?:sorry,? )?i (?:can't|cannot|can not|won't|will not) (?:help|assist|comply"
    r"|provide|do that|fulfil|fulfill|answer|support|create|write|generate|share|engage)",
    r"\bas an ai(?: language model| assistant)?,? i (?:can't|cannot|am not able|don't|do not)",
    r"\bi(?:'m| am) (?:not able|unable) to (?:help|assist|comply|provide|fulfil|fulfill"
    r"|answer|do that|support)",
    r"\bi must (?:respectfully )?(?:decline|refuse)",
    # French
    r"\bje ne (?:peux|suis pas en mesure d[e'])\s?(?:pas )?(?:vous |t')?(?:aider|répondre"
    r"|fournir|faire|assister)",
    r"\b(?:désolé|je suis désolé)e?,? (?:mais )?je ne (?:peux|suis pas)",
    # Spanish
    r"\blo siento,? (?:pero )?no puedo",
    r"\bno puedo (?:ayudar|ayudarte|ayudarle|proporcionar|asistir|cumplir|responder)",
    # German
    r"\bes tut mir leid,? aber ich kann",
    r"\bich kann (?:ihnen |dir )?(?:dabei |damit |hierbei |hier )?nicht helfen",
    # Italian
    r"\bmi dispiace,? ma non posso",
    r"\bnon posso (?:aiutarti|aiutarla|aiutare|fornire|assisterti|rispondere)",
    # Portuguese
    r"\b(?:desculpe|lamento),? mas não posso",
    r"\bnão posso (?:ajudar|fornecer|atender|responder)",
    # Dutch
    r"\bhet spijt me,? maar ik kan",
    r"\bik kan (?:je |u )?(?:daar |hier |hierbij )?niet (?:mee )?helpen",
    # Russian
    r"(?:извините|простите|к сожалению),? (?:но )?я не могу",
    r"\bя не могу (?:помочь|выполнить|предоставить)",
    # Chinese, Japanese
    r"(?:抱歉|对不起|很抱歉)[，,]?\s*我(?:无法|不能)",
    r"我(?:无法|不能)(?:帮助|帮忙|提供|协助|回答)",
    r"申し訳(?:ありません|ございません)が[、,]?.{0,40}?(?:できません|お手伝いできません"
    r"|お答えできません)",
)), re.IGNORECASE)
_OLD_CUES = (
    "sorry", "afraid", "can", "won't", "will not", "as an ai", "able", "must", "je ne",
    "no puedo", "ich kann", "non posso", "não posso", "ik kan", "я не могу", "我无法",
    "我不能", "申し訳",
)


def old_is_refusal(text: str) -> bool:
    head = text[:_OLD_HEAD].replace("\u2019", "'").lower()
    if not any(cue in head for cue in _OLD_CUES):
        return False
    return _OLD_REFUSAL.search(head) is not None


# ----------------------------------------------------------------- structure

def test_the_definition_of_a_refusal_did_not_change() -> None:
    assert verify._REFUSAL.pattern == _OLD_REFUSAL.pattern
    assert verify._REFUSAL.flags == _OLD_REFUSAL.flags
    assert verify._HEAD == _OLD_HEAD
    assert verify._REFUSAL_CUES == _OLD_CUES


def test_every_cue_holds_an_old_cue_and_every_phrase_has_a_cue() -> None:
    for cues, pattern in verify._PHRASES:
        assert cues, pattern
        for cue in cues:
            assert any(old in cue for old in _OLD_CUES), cue
            assert cue == cue.lower() and "\u2019" not in cue


def test_the_fold_set_is_every_character_ignorecase_folds_onto_a_cue_letter() -> None:
    # the characters a lower-cased text can hold (str.lower of every code point)
    lowered = {ch for cp in range(0x110000) if not 0xD800 <= cp < 0xE000
               for ch in chr(cp).lower()}
    letters = sorted({ch for cue, _ in verify._BY_CUE for ch in cue})
    any_letter = re.compile("[" + re.escape("".join(letters)) + "]", re.IGNORECASE)
    folds = {ch for ch in lowered if ch not in letters and any_letter.fullmatch(ch)}
    assert folds == set(verify._FOLDS.pattern[1:-1])
    assert all(ch.lower() == ch for ch in lowered)  # lower() is idempotent here
    assert not any(ch.isascii() for ch in folds)  # ASCII text skips the fold scan


def _phrase_strings() -> list[st.SearchStrategy[str]]:
    return [st.from_regex(re.compile(pattern, re.IGNORECASE), fullmatch=True)
            for _, pattern in verify._PHRASES]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(range(len(verify._PHRASES))).flatmap(
    lambda i: st.tuples(st.just(i), _phrase_strings()[i])))
def test_every_match_of_a_phrase_contains_one_of_its_cues(case: tuple[int, str]) -> None:
    i, text = case
    cues, pattern = verify._PHRASES[i]
    head = text.replace("\u2019", "'").lower()
    if re.search(pattern, head, re.IGNORECASE) and verify._FOLDS.search(head) is None:
        assert any(cue in head for cue in cues), (cues, text)


# ----------------------------------------------------------------- differential

SAMPLES = [
    # one per branch, and the cue phrases themselves
    "I'm sorry, but I can't help with that.",
    "I’m sorry, but I cannot assist with this request.",
    "I am afraid I cannot do this.",
    "I can't help with that.",
    "Sorry, I won't write that.",
    "  ** I will not engage with this.",
    "As an AI language model, I cannot provide that.",
    "As an AI, I don't have opinions.",
    "I am unable to assist with that.",
    "I'm not able to help with that.",
    "I must decline to answer.",
    "I must respectfully decline.",
    "I must refuse.",
    "Je ne peux pas vous aider avec cela.",
    "Je ne suis pas en mesure de vous aider.",
    "Désolé, mais je ne peux pas.",
    "Je suis désolée, je ne suis pas autorisée.",
    "Lo siento, pero no puedo ayudarte.",
    "No puedo ayudar con eso.",
    "Es tut mir leid, aber ich kann das nicht tun.",
    "Ich kann Ihnen dabei nicht helfen.",
    "Mi dispiace, ma non posso farlo.",
    "Non posso aiutarti.",
    "Desculpe, mas não posso ajudar com isso.",
    "Lamento, mas não posso.",
    "Não posso ajudar.",
    "Het spijt me, maar ik kan dat niet doen.",
    "Ik kan je daar niet mee helpen.",
    "Извините, но я не могу помочь с этим.",
    "К сожалению, я не могу это сделать.",
    "Я не могу помочь.",
    "抱歉，我无法提供帮助。",
    "很抱歉，我不能这样做。",
    "我不能回答这个问题。",
    "申し訳ありませんが、お手伝いできません。",
    "申し訳ございませんが、その質問にはお答えできません。",
    # near misses and ordinary answers
    "Hello from the bench upstream.",
    "Paris is the capital of France.",
    "You can do this in three steps; I am able to show you how.",
    "I can help with that! Here is the code.",
    "Sorry for the delay - here is the answer.",
    "I must say, this is a great question.",
    "I'm not sure, but I think the answer is 42.",
    "The function is unable to parse the input when I am unable to see it.",
    "ich kann das machen", "no puedo creerlo, es perfecto", "non posso crederci!",
    "",
    "   ",
    # JSON answers and tool-call-like text
    '{"answer": "I can\'t help with that"}',
    '{"refusal": null, "content": "Paris"}',
    '[{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}]',
    '```json\n{"a": 1}\n```',
    '<tool_call>{"name": "search", "arguments": {"q": "sorry"}}</tool_call>',
]
# unicode: characters re.IGNORECASE folds onto cue letters, other scripts, NFD forms
UNICODE = [
    "ı can't help with that.",             # dotless i
    "I'm ſorry, but I can't.",             # long s
    "ı'm ſorry, but ı can't do it",
    "ı must decline.",
    "ı am unable to help.",
    "I am unable to help.",
    "Ⅰ can't help",                          # roman numeral one
    "Я не мᲂгу помочь.",                     # Cyrillic small rounded o (U+1C82)
    "İ can't help with that.",               # dotted capital I lowers to i + U+0307
    "K can't", "I CAN'T HELP WITH THAT.", "I Can't Help With That.",
    "i ﬁnd it hard",                          # ligature
    unicodedata.normalize("NFD", "Desculpe, mas não posso ajudar."),
    unicodedata.normalize("NFD", "Désolé, mais je ne peux pas."),
    "😀 I'm sorry, but I can't help with that.",
    "Ответ: 42. Я не могу сказать больше? Нет, могу.",
    "答案是42。我无法确定。",
]


def _variants(text: str) -> list[str]:
    pad = "The answer follows. " * 40  # 800 characters: pushes a phrase past the head
    return [text, text.upper(), text.title(), text.swapcase(), text.lower(),
            "Note: " + text, text + " " + pad, pad + text, pad[:590] + text,
            pad[:560] + text, text.replace("'", "\u2019"), text * 3,
            "\n".join([text, text]), text.replace(" ", "\u00a0")]


@pytest.mark.parametrize("text", SAMPLES + UNICODE)
def test_the_new_check_agrees_with_the_old_one(text: str) -> None:
    for t in _variants(text):
        assert verify.is_refusal(t) == old_is_refusal(t), t


def test_the_samples_cover_both_answers() -> None:
    results = {old_is_refusal(t) for t in SAMPLES}
    assert results == {True, False}


_WORDS = ["i", "i'm", "am", "sorry", "afraid", "but", "can't", "cannot", "can", "not",
          "won't", "will", "help", "assist", "as", "an", "ai", "unable", "able", "to",
          "must", "respectfully", "decline", "refuse", "je", "ne", "peux", "pas", "désolé",
          "no", "puedo", "lo", "siento", "ich", "kann", "nicht", "helfen", "non", "posso",
          "não", "ik", "kan", "niet", "я", "не", "могу", "помочь", "我", "无法", "不能",
          "帮助", "抱歉", "申し訳ありませんが", "できません", "ı", "ſorry", "the", "answer",
          "is", "42", ",", ".", "\n", "’", "{", "}", '"']


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(_WORDS), max_size=30), st.integers(0, 700))
def test_random_cue_soups_agree(words: list[str], pad: int) -> None:
    text = " ".join(words)
    assert verify.is_refusal(text) == old_is_refusal(text)
    padded = "x" * pad + " " + text
    assert verify.is_refusal(padded) == old_is_refusal(padded)


@settings(max_examples=1500, deadline=None)
@given(st.text(max_size=700))
def test_arbitrary_text_agrees(text: str) -> None:
    assert verify.is_refusal(text) == old_is_refusal(text)


_SWAPS = {"i": "ıI", "s": "ſS", "о": "ᲂО", "k": "K"}


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(range(len(verify._PHRASES))).flatmap(_phrase_strings().__getitem__),
       st.randoms(use_true_random=False))
def test_generated_phrases_with_folded_letters_agree(text: str, rng: random.Random) -> None:
    folded = "".join(rng.choice(_SWAPS[c]) if c in _SWAPS and rng.random() < 0.3 else c
                     for c in text)
    for t in (text, folded, "x " + folded, folded * 2):
        assert verify.is_refusal(t) == old_is_refusal(t), t


def test_a_folded_letter_takes_the_old_path() -> None:
    # no cue of the matching phrase is a substring ("m sorry" vs "m ſorry"), yet the
    # regex matches under IGNORECASE: the old answer (True) must stand
    text = "ı'm ſorry, but ı can't do it"
    assert old_is_refusal(text) is True
    assert verify.is_refusal(text) is True
