"""The avatarl objective under DDP on CPU: `torchrun --nproc_per_node=2 -m avatarl.cli --objective avatarl` trains,
logs the avatarl metrics once per row from rank 0, saves both ranks' batch streams, and resumes."""

from avatarl.data import prepare
from avatarl.loop import load_checkpoint, make_config, read_metrics, train

TINY = ["n_layer=1", "n_head=2", "n_embd=32", "block_size=32", "batch_size=4", "eval_iters=2", "log_interval=3",
        "eval_interval=3", "warmup_iters=2"]


def test_avatarl_ddp(tmp_path, torchrun):
    data, critic, out = tmp_path/"data", tmp_path/"critic", tmp_path/"avatarl"
    prepare("shakespeare", "char", out=data)
    train(make_config("cpu-tiny", data_dir=str(data), out_dir=str(critic), max_iters=6,
                      **{k: int(v) for k, v in (t.split("=") for t in TINY)}))
    flags = ["--objective", "avatarl", "--critic", critic, "--preset", "cpu-tiny", "--out", out,
             "--set", *TINY, f"data_dir={data}", "grad_accum=2", "--obj", "top_k=4"]
    torchrun("-m", "avatarl.cli", *flags, "--max_iters", 6)
    rows = read_metrics(out)
    assert [r["iter"] for r in rows] == [0, 3, 6]  # each row once: only rank 0 writes
    assert all({"reward_mean", "rewarded_frac", "active_size", "student_ce", "critic_weight"} <= r.keys() for r in rows[1:])
    ckpt = load_checkpoint(out)
    assert [s["rank"] for s in ckpt["sampler"]] == [0, 1] and ckpt["objective"]["critic_weight"] == 0.3
    torchrun("-m", "avatarl.cli", *flags, "--max_iters", 9, "--resume")  # continue the same run to 9 steps on both ranks
    assert [r["iter"] for r in read_metrics(out)] == [0, 3, 6, 9] and load_checkpoint(out)["iter"] == 9
