"""The perturbation library (paper 000 §3.2, Fig. 2, App. B) and its hypothesis strategies."""

from __future__ import annotations

import difflib
import inspect
import json
import os
import re
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pytest_qrel.perturb as perturb_module
import pytest_qrel.strategies as strategies_module
from pytest_qrel.perturb import (
    LEVELS,
    PERTURBATIONS,
    get_perturbation,
    perturb,
    perturb_chain,
    perturb_prompt,
    register,
)
from pytest_qrel.perturb.character import KEYBOARD_NEIGHBOURS, NOISE_CHARACTERS
from pytest_qrel.perturb.vocab import emoji, filler_words, leetspeak_map, slang_terms, translations
from pytest_qrel.strategies import perturbation_chains, perturbed_prompts

CHARACTER = ["char_insertion", "char_deletion", "char_replacement", "char_swap", "char_repetition",
             "leetspeak", "char_noise", "case_change", "emoji"]
WORD = ["word_insertion", "word_deletion", "word_swap", "word_repetition", "slang", "translation"]
NAMES = CHARACTER + WORD

# Long enough that intensity 16 never runs out of places to edit (no punctuation glued to words,
# so word counts by str.split are exact).
TEXT = ("What is the capital city of France and where does the old farmer actually live today "
        "The Quick Brown Fox also hides a sweet cake near the river but the busy teacher really finds "
        "a small boat at the market while the little girl paints a green lamp under the tree with "
        "her friend so the young doctor basically eats some fresh fish in the garden after rain")
ZOO_PROMPTS = [
    "question : where does yusuf price live ? answer :",
    "question : what is the job of yusuf price ? answer :",
    "question : which animal does xenia miller keep ? answer :",
    "question : in which country does Henry Patel live ? answer : canada",
    "question : what is the job of julia burns ? answer : chemist . question : which animal does "
    "sara harris keep ? answer : horse . madrid is a city in spain .",
]
MARKER = re.compile(r"(question :|answer :)")


def hamming(a: str, b: str) -> int:
    assert len(a) == len(b)
    return sum(x != y for x, y in zip(a, b))


def char_edits(a: str, b: str) -> int:
    ops = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    return sum(max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in ops if tag != "equal")


def word_edits(a: str, b: str) -> int:
    ops = difflib.SequenceMatcher(None, a.split(), b.split(), autojunk=False).get_opcodes()
    return sum(max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in ops if tag != "equal")


def added(a: str, b: str) -> Counter:
    return Counter(b.split()) - Counter(a.split())


def scaffold(prompt: str) -> list[str]:
    """The markers in order, and each answer (the text after 'answer :' up to the next marker)."""
    pieces = MARKER.split(prompt)
    return [p if k % 2 or pieces[k - 1] == "answer :" else "<free>" for k, p in enumerate(pieces) if k]


# -- registry -------------------------------------------------------------------------------

def test_exactly_the_fifteen_perturbations_of_paper_000():
    assert sorted(PERTURBATIONS) == sorted(NAMES)
    assert [n for n in NAMES if LEVELS[n] == "character"] == CHARACTER
    assert [n for n in NAMES if LEVELS[n] == "word"] == WORD


def test_registering_a_name_twice_raises():
    with pytest.raises(ValueError, match="Expected a new perturbation name, but 'leetspeak' is already registered"):
        register("leetspeak", "character")(lambda text, intensity, rng: text)
    assert PERTURBATIONS["leetspeak"].__name__ == "leetspeak"


def test_lookup_miss_lists_the_valid_names():
    with pytest.raises(ValueError, match=re.escape(f"Expected a perturbation in {sorted(NAMES)}, but got 'typo'")):
        get_perturbation("typo")
    with pytest.raises(ValueError, match=re.escape(f"Expected a perturbation in {sorted(NAMES)}, but got 'typo'")):
        perturb(TEXT, "typo", 4, 0)


@pytest.mark.parametrize("intensity", [-1, 1.5, True, "4"])
def test_bad_intensity_raises(intensity):
    with pytest.raises(ValueError, match=re.escape(f"Expected `intensity` to be a non-negative integer, but got {intensity!r}")):
        perturb(TEXT, "char_swap", intensity, 0)
    with pytest.raises(ValueError, match="Expected `intensity`"):
        perturb_prompt(ZOO_PROMPTS[0], "char_swap", intensity, 0)


def test_all_of_perturb_matches_what_is_public():
    public = {n for n, v in vars(perturb_module).items()
              if not n.startswith("_") and not inspect.ismodule(v) and n != "annotations"}
    assert set(perturb_module.__all__) == public
    assert len(perturb_module.__all__) == len(set(perturb_module.__all__))


def test_all_of_strategies_matches_what_is_public():
    defined_here = {n for n, v in vars(strategies_module).items()
                    if not n.startswith("_") and getattr(v, "__module__", None) == "pytest_qrel.strategies"}
    assert set(strategies_module.__all__) == defined_here == {"PerturbedPrompt", "perturbed_prompts", "perturbation_chains"}


def test_importing_perturb_imports_neither_hypothesis_nor_torch():
    code = "import sys, pytest_qrel.perturb; print(sorted(m for m in ('hypothesis', 'torch', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == "[]"


# -- every perturbation ---------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_deterministic_for_a_seed_and_different_across_seeds(name):
    outputs = [perturb(TEXT, name, 4, seed) for seed in range(6)]
    assert outputs == [perturb(TEXT, name, 4, seed) for seed in range(6)]
    assert len(set(outputs)) == 6
    assert all(out != TEXT for out in outputs)


@pytest.mark.parametrize("name", NAMES)
def test_intensity_zero_is_the_identity(name):
    assert perturb(TEXT, name, 0, 3) is TEXT
    assert perturb_prompt(ZOO_PROMPTS[4], name, 0, 3) == ZOO_PROMPTS[4]


@pytest.mark.parametrize("name", NAMES)
def test_edits_grow_with_intensity(name):
    measure = char_edits if name in CHARACTER else word_edits
    for seed in range(3):
        counts = [measure(TEXT, perturb(TEXT, name, k, seed)) for k in (1, 4, 16)]
        assert 0 < counts[0] < counts[1] < counts[2], counts


EXACT = {  # (paper 000's intensity = number of edits) -> what one run of each perturbation must show
    "char_insertion": lambda a, b, k: len(b) - len(a) == k,
    "char_deletion": lambda a, b, k: len(a) - len(b) == k,
    "char_replacement": lambda a, b, k: hamming(a, b) == k,
    "char_swap": lambda a, b, k: hamming(a, b) == 2 * k and sorted(a) == sorted(b),
    "char_repetition": lambda a, b, k: len(b) - len(a) == k and re.sub(r"(.)\1", r"\1", b) != b,
    "leetspeak": lambda a, b, k: hamming(a, b) == k,
    "char_noise": lambda a, b, k: (Counter(b) - Counter(a)).total() == k and not Counter(a) - Counter(b),
    "case_change": lambda a, b, k: hamming(a, b) == k and a.lower() == b.lower(),
    "emoji": lambda a, b, k: (Counter(b) - Counter(a)) == Counter({" ": k}) + Counter(
        c for c in b if c in set(emoji())) and not Counter(a) - Counter(b),
    "word_insertion": lambda a, b, k: len(b.split()) - len(a.split()) == k,
    "word_deletion": lambda a, b, k: len(a.split()) - len(b.split()) == k,
    "word_swap": lambda a, b, k: sum(x != y for x, y in zip(a.split(), b.split())) == 2 * k
    and sorted(a.split()) == sorted(b.split()),
    "word_repetition": lambda a, b, k: len(b.split()) - len(a.split()) == k and not Counter(a.split()) - Counter(b.split()),
    "slang": lambda a, b, k: len(b.split()) - len(a.split()) == k,
    "translation": lambda a, b, k: sum(x != y for x, y in zip(a.split(), b.split())) == k and len(a.split()) == len(b.split()),
}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("intensity", [1, 4, 16])
def test_intensity_is_the_number_of_edits(name, intensity):
    for seed in range(3):
        assert EXACT[name](TEXT, perturb(TEXT, name, intensity, seed), intensity), (name, intensity, seed)


@pytest.mark.parametrize("name", WORD)
def test_word_perturbations_edit_at_most_as_many_words_as_the_prompt_has(name):
    short = "where does the farmer live"
    out = perturb(short, name, 16, 0)
    assert word_edits(short, out) <= 2 * len(short.split())
    assert perturb("", name, 16, 0) == "" and perturb("   ", name, 16, 0) == "   "


@pytest.mark.parametrize("name", ["char_insertion", "char_replacement"])
def test_keyboard_typos_keep_the_case(name):
    for text in (TEXT.lower(), TEXT.upper()):
        for seed in range(5):
            out = perturb(text, name, 16, seed)
            assert out != text
            assert (out.lower() if text.islower() else out.upper()) == out


def test_keyboard_typos_use_adjacent_keys():
    for seed in range(5):
        out = perturb(TEXT, "char_replacement", 16, seed)
        for x, y in zip(TEXT, out):
            if x != y:
                assert y.lower() in KEYBOARD_NEIGHBOURS[x.lower()], (x, y)


def test_leetspeak_uses_only_its_map():
    table = leetspeak_map()
    assert sum(map(len, table.values())) == 93  # paper 000 App. B
    for pair in [("A", "@"), ("e", "€"), ("b", "6"), ("w", "ω"), ("X", "×")]:  # Table 4
        assert pair[1] in table[pair[0]]
    for seed in range(10):
        out = perturb(TEXT, "leetspeak", 16, seed)
        changed = [(x, y) for x, y in zip(TEXT, out) if x != y]
        assert len(changed) == 16 and all(y in table[x] for x, y in changed)


def test_char_noise_inserts_only_punctuation_and_digits():
    out = perturb(TEXT, "char_noise", 16, 0)
    assert set((Counter(out) - Counter(TEXT)).elements()) <= set(NOISE_CHARACTERS)


def test_filler_deletion_never_deletes_a_non_filler_word():
    fillers = filler_words()
    assert 480 <= len(fillers) <= 540  # paper 000 App. B: 508
    assert {"and", "to", "also", "actually"} <= fillers
    texts = [TEXT, "And actually, where (really) does Yusuf live? I think, basically, in Paris.", *ZOO_PROMPTS]
    for text in texts:
        core = lambda w: re.sub(r"^\W+|\W+$", "", w).lower()  # noqa: E731
        before = [core(w) for w in text.split() if core(w)]
        for seed in range(5):
            after = [core(w) for w in perturb(text, "word_deletion", 16, seed).split() if core(w)]
            removed = Counter(before) - Counter(after)
            assert not Counter(after) - Counter(before)
            assert removed and set(removed) <= fillers, removed
    assert perturb("Paris Tokyo Berlin", "word_deletion", 16, 0) == "Paris Tokyo Berlin"


def test_word_insertion_inserts_only_filler_words():
    for seed in range(5):
        assert set(added(TEXT, perturb(TEXT, "word_insertion", 16, seed))) <= filler_words()


def test_slang_uses_only_its_dictionary():
    terms = slang_terms()
    assert {"lol", "imo", "roffl"} <= set(terms)
    for seed in range(5):
        new = added(TEXT, perturb(TEXT, "slang", 16, seed))
        assert new.total() == 16 and set(new) <= set(terms)
    assert perturb("capital of France?", "slang", 1, 0).endswith("?")


def test_translation_uses_only_its_dictionary_in_six_languages():
    dictionary = translations()
    languages = set()
    for seed in range(10):
        out = perturb(TEXT, "translation", 16, seed)
        for x, y in zip(TEXT.split(), out.split()):
            if x != y:
                matches = [lang for lang, t in dictionary[x.lower()].items() if t.lower() == y.lower()]
                assert matches, (x, y)
                if x[0].isupper():  # a capitalised word stays capitalised (German nouns are always)
                    assert y[0].isupper() or y[0].lower() == y[0].upper(), (x, y)
                languages.update(matches)
    assert languages == {"es", "fr", "de", "it", "ru", "zh"}
    assert perturb("Xylophone zebra quux", "translation", 16, 0) == "Xylophone zebra quux"


def test_word_swap_keeps_punctuation_in_place():
    out = perturb("What is the capital of France?", "word_swap", 3, 2)
    assert out.endswith("?") and sorted(out.rstrip("?").split()) == sorted("What is the capital of France".split())


# -- seeding --------------------------------------------------------------------------------

def test_seeding_is_independent_of_order_and_process():
    jobs = [(TEXT, name, k, seed) for name in NAMES for k in (4, 16) for seed in (0, 1)]
    forward = [perturb(*job) for job in jobs]
    assert [perturb(*job) for job in reversed(jobs)] == forward[::-1]
    code = "import sys, json; from pytest_qrel.perturb import perturb; print(json.dumps([perturb(*j) for j in json.loads(sys.stdin.read())]))"
    for hash_seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], input=json.dumps(jobs[:8]), capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": os.pathsep.join(sys.path)})
        assert json.loads(out.stdout) == forward[:8]


# -- protected prompt scaffolding -----------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_prompt_scaffolding_and_answers_are_never_perturbed(name):
    for prompt in ZOO_PROMPTS:
        for seed in range(3):
            out = perturb_prompt(prompt, name, 16, seed)
            assert scaffold(out) == scaffold(prompt)
            assert out.startswith("question : ")
    assert perturb_prompt(ZOO_PROMPTS[0], name, 4, 0) != ZOO_PROMPTS[0]
    chain = perturb_chain(ZOO_PROMPTS[3], [(name, 4), ("case_change", 4), ("word_swap", 4)], 1)
    assert chain.endswith("answer : canada") and scaffold(chain) == scaffold(ZOO_PROMPTS[3])


def test_perturb_prompt_with_no_markers_perturbs_everything():
    out = perturb_prompt(TEXT, "case_change", 4, 0, protected=(), answer_markers=())
    assert hamming(TEXT, out) == 4 and out.lower() == TEXT.lower()


# -- arbitrary unicode ----------------------------------------------------------------------

unicode_text = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(list("aZé\u0301\u0308 \t\n?,.😊👍🏽\u200dß\u0130ﬁ中Ж") + ["question :", "answer :", "the "]),
             max_size=30).map("".join),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(unicode_text, st.sampled_from(NAMES), st.integers(0, 20), st.integers(-(2**70), 2**70))
def test_arbitrary_unicode_never_crashes(text, name, intensity, seed):
    out = perturb(text, name, intensity, seed)
    assert isinstance(out, str)
    if intensity == 0 or not text.strip():
        assert out == text
    prompt = perturb_prompt(text, name, intensity, seed)
    assert scaffold(prompt) == scaffold(text)
    if intensity == 0:
        assert perturb(text, name, 0, seed) is text and prompt == text


# -- hypothesis strategies ------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(perturbed_prompts(ZOO_PROMPTS))
def test_perturbed_prompts_keep_the_scaffolding(example):
    assert example.prompt in ZOO_PROMPTS and example.perturbation in NAMES and 0 <= example.intensity <= 16
    assert scaffold(example.perturbed) == scaffold(example.prompt)
    assert example.perturbed == perturb_prompt(example.prompt, example.perturbation, example.intensity, example.seed)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(ZOO_PROMPTS), perturbation_chains(max_intensity=8, max_size=4), st.integers(0, 9))
def test_perturbation_chains_keep_the_scaffolding(prompt, chain, seed):
    assert 1 <= len(chain) <= 4 and all(name in NAMES and 0 <= k <= 8 for name, k in chain)
    assert scaffold(perturb_chain(prompt, chain, seed)) == scaffold(prompt)


@settings(max_examples=30, deadline=None)
@given(perturbed_prompts(st.just(ZOO_PROMPTS[0]), perturbations=["leetspeak"], max_intensity=0))
def test_perturbed_prompts_restrict_to_the_chosen_perturbations(example):
    assert example.perturbation == "leetspeak" and example.perturbed == example.prompt


def test_strategies_validate_their_arguments():
    with pytest.raises(ValueError, match="Expected a perturbation in"):
        perturbed_prompts(ZOO_PROMPTS, perturbations=["typo"])
    with pytest.raises(ValueError, match="Expected `max_intensity` to be a non-negative integer, but got -1"):
        perturbation_chains(max_intensity=-1)
    with pytest.raises(ValueError, match="Expected `prompts` to be a non-empty sequence"):
        perturbed_prompts([])
    with pytest.raises(ValueError, match="Expected `perturbations` to be a non-empty sequence of names, but got 'slang'"):
        perturbation_chains(perturbations="slang")
