"""bindsearch's CLIP tokenizer gives OpenCLIP's tokens exactly, and a text query never imports OpenCLIP."""

from __future__ import annotations

import subprocess
import sys

import ftfy
import open_clip
import pytest
import torch
from helpers import REPO, draw_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bindsearch
from bindsearch.preprocess import clip_bpe
from bindsearch.preprocess.text import tokenize

TEXTS = [
    "",
    "   ",
    "a dog",
    "A Dog Running On The Beach.",
    "it's, they're, we've, I'm, you'll, he'd, don't, CAN'T",
    "Hello,   world!!!  ...   ?!?! (really) [brackets] {braces} <angle> #tag @user $5 100% a+b=c",
    "3.14159 2024-06-01 1,000,000 0x1F 42nd",
    "tabs\tand\nnew\r\nlines\rand\x0bvertical\x0cfeeds",
    "&amp; &lt;b&gt; &amp;amp;amp; &quot;quoted&quot; &#39;x&#39; &nbsp;space &copy;",
    "<b>bold</b> & <i>italic</i> &amp; more",
    "café naïve résumé Ångström façade coöperate",
    "cafÃ© â€œmojibakeâ€\x9d",
    "“curly quotes” and ‘single’ — dashes – and… ellipsis",
    "ﬁne ﬂour ligatures, ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",
    "😀🐶🚀 family 👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵 skin 👍🏽 keycap 1️⃣",
    "日本語のテキスト 中文文本 한국어 텍스트",
    "русский текст, ελληνικά, עברית, العربية, हिन्दी, ไทย",
    "İstanbul ǅ ß ẞ Σίσυφος ﬀ",
    "e\u0301 combining, zero\u200bwidth, bidi\u202eoverride, nbsp\u00a0here, \x00\x07 controls \x1b[31mred\x1b[0m",
    "<start_of_text> literal <END_OF_TEXT> specials <|endoftext|>",
    "word " * 200,
    "supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis " * 5,
    "a" * 500,
    "🐶" * 100,
    "\ud83d lone surrogate",
]


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_tokens_equal_openclips(text):
    assert torch.equal(tokenize(text), open_clip.tokenize([text]))


def test_batch_of_texts_equals_openclips():
    assert torch.equal(tokenize(TEXTS), open_clip.tokenize(TEXTS))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=120))
def test_any_text_gives_openclips_tokens(text):
    assert tokenize(text).tolist() == open_clip.tokenize([text]).tolist()


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=sorted(clip_bpe._ASCII_FTFY_KEEPS), max_size=200))
def test_ftfy_leaves_the_text_it_is_skipped_for_alone(text):
    # The tokenizer skips ftfy for printable ASCII without '&': that is only right if ftfy would not change it.
    assert ftfy.fix_text(text) == text
    assert tokenize(text).tolist() == open_clip.tokenize([text]).tolist()


def test_vocabulary_is_found_without_importing_openclip():
    done = subprocess.run(
        [sys.executable, "-c",
         "import sys\nfrom bindsearch.preprocess.text import tokenize\n"
         "ids = tokenize('a photo of a dog')[0, :7].tolist()\n"
         "print(ids, 'open_clip' in sys.modules, 'ftfy' in sys.modules)"],
        capture_output=True, text=True, timeout=300, check=True)
    assert done.stdout.split("]")[1].split() == ["False", "False"]
    assert done.stdout.startswith(str(open_clip.tokenize(["a photo of a dog"])[0, :7].tolist()))


def test_text_query_in_a_new_process_never_imports_openclip(tmp_path):
    images = tmp_path / "media"
    for i in range(2):
        draw_image(images / f"{i}.png", seed=i)
    space = REPO / "examples" / "tiny-imagebind.json"
    with bindsearch.open_library(tmp_path / "lib", space, create=True) as lib:
        assert lib.index([images]).added == 2
    verdict = tmp_path / "imported.txt"
    code = (
        "import atexit, sys\n"
        f"atexit.register(lambda: open({str(verdict)!r}, 'w').write(repr(sorted(\n"
        "    m for m in ('open_clip', 'ftfy') if m in sys.modules))))\n"
        "from bindsearch.cli.app import main\n"
        f"sys.argv = ['bindsearch', 'query', '--text', 'a dog', '--library', {str(tmp_path / 'lib')!r}, '--json']\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count('"path"') == 2
    assert verdict.read_text() == "[]"  # neither the model library nor ftfy: plain ASCII needs no repair

