"""What makes `avatarl.data.prepare` safe: locking, interrupted writes, skipping, Arrow reads (nbs/00_data.ipynb)."""
import fcntl, threading, time

import numpy as np
import pytest
import tiktoken
from datasets import Dataset, DatasetDict

import avatarl.data as data
from avatarl.data import (TOKEN_FEATURES, Corpus, encode_docs, gpt2_encoding, load_meta, prepare, read_meta,
                          shakespeare_plays, write_tokens)


def tiny_corpus(val_frac:float=0.5) -> Corpus:
    "Six short documents, half held out: a corpus that prepares in a fraction of a second."
    texts = [f"Document {i}: " + "to be or not to be " * (i + 1) for i in range(6)]
    n_val = int(len(texts) * val_frac)
    load = lambda: DatasetDict({"train": Dataset.from_dict({"text": texts[n_val:]}),
                                "val": Dataset.from_dict({"text": texts[:n_val]})})
    return Corpus("tiny", {"texts": len(texts), "val_frac": val_frac}, load)


class Killed(BaseException):
    "Stands in for the process being killed: not an Exception, so nothing on the way catches it."


def test_interrupted_prepare_never_looks_complete_and_is_redone(tmp_path, monkeypatch):
    d = prepare(tiny_corpus(), "gpt2", out=tmp_path)
    before = {s: (d / f"{s}.bin").read_bytes() for s in ("train", "val")}
    real = data.write_tokens

    def dying_write(ds, path, dtype):
        "write_tokens for train.bin; part of val.bin.tmp, then the kill."
        if path.name == "train.bin": return real(ds, path, dtype)
        np.memmap(path.with_name(path.name + ".tmp"), dtype=dtype, mode="w+", shape=(10,)).flush()
        raise Killed("while writing val.bin")

    monkeypatch.setattr(data, "write_tokens", dying_write)
    with pytest.raises(Killed): prepare(tiny_corpus(), "gpt2", out=tmp_path, force=True)
    assert read_meta(d) is None and (d / "val.bin.tmp").exists()
    with pytest.raises(FileNotFoundError, match="make it with `avatarl_prepare --corpus tiny --tokenizer gpt2"):
        load_meta(d)
    monkeypatch.setattr(data, "write_tokens", real)
    prepare(tiny_corpus(), "gpt2", out=tmp_path)  # no force needed: the directory is incomplete, so it is redone
    assert read_meta(d) is not None and not list(d.glob("*.tmp"))
    assert all((d / f"{s}.bin").read_bytes() == b for s, b in before.items())


def test_two_prepares_of_one_directory_take_turns(tmp_path):
    d = prepare(tiny_corpus(), "gpt2", out=tmp_path)
    with open(d / ".lock", "w") as held:  # as if another prepare were running: it holds the lock, meta.json is gone
        fcntl.flock(held, fcntl.LOCK_EX)
        (d / "meta.json").unlink()
        second = threading.Thread(target=prepare, args=(tiny_corpus(), "gpt2", tmp_path))
        second.start()
        time.sleep(0.5)
        waited = second.is_alive()
    second.join(timeout=30)
    assert waited and not second.is_alive() and read_meta(d) is not None


def test_up_to_date_data_is_skipped_and_force_or_a_new_source_redoes_it(tmp_path, monkeypatch):
    prepare(tiny_corpus(), "gpt2", out=tmp_path)
    calls = []
    real = data.write_prepared
    monkeypatch.setattr(data, "write_prepared", lambda *a, **k: calls.append(1) or real(*a, **k))
    t0 = time.perf_counter()
    prepare(tiny_corpus(), "gpt2", out=tmp_path)
    assert not calls and time.perf_counter() - t0 < 1
    prepare(tiny_corpus(), "gpt2", out=tmp_path, force=True)
    prepare(tiny_corpus(val_frac=1 / 3), "gpt2", out=tmp_path)  # another source: the data is stale
    assert len(calls) == 2 and load_meta(tmp_path / "tiny-gpt2")["val_docs"] == 2


@pytest.mark.parametrize("batch_size", [1, 3, 10_000])
def test_write_tokens_reads_shuffled_and_chunked_datasets(tmp_path, batch_size):
    rng = np.random.default_rng(0)
    ids = [rng.integers(0, 50_000, n).tolist() for n in rng.integers(1, 30, 200)]
    ds = Dataset.from_dict({"ids": ids, "len": [len(i) for i in ids]}, features=TOKEN_FEATURES)
    view = ds.shuffle(seed=1).select(range(20, 180))  # an indices mapping: rows are not in table order
    n = write_tokens(view, tmp_path / "x.bin", np.dtype(np.uint16), batch_size=batch_size)
    expected = np.concatenate([view[i]["ids"] for i in range(len(view))]).astype(np.uint16)
    assert n == len(expected) and np.array_equal(np.fromfile(tmp_path / "x.bin", dtype=np.uint16), expected)
    assert not list(tmp_path.glob("*.tmp"))


def test_gpt2_encoding_matches_tiktokens_download():
    box = {}
    def fetch():
        try: box["enc"] = tiktoken.get_encoding("gpt2")
        except Exception as e: box["why"] = f"{type(e).__name__}: {str(e)[:120]}"
    worker = threading.Thread(target=fetch, daemon=True)
    worker.start()
    worker.join(10)
    if "enc" not in box: pytest.skip(f"tiktoken's GPT-2 files could not be downloaded: {box.get('why', 'timed out')}")
    text = shakespeare_plays()["hamlet"] + " café, naïve, 🙂"
    assert box["enc"].encode(text) == gpt2_encoding().encode(text) and box["enc"].n_vocab == gpt2_encoding().n_vocab
    assert encode_docs(box["enc"], [text]) == encode_docs(gpt2_encoding(), [text])
