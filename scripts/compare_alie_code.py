"""Differential test: the same round(s) in the ALIE authors' code and in byzrun, step by step.

From one set of initial parameters (the code's, copied into byzrun) both programs run K rounds of
MNIST, n=51 workers, m=12 Byzantine, batches of 128, server lr 0.1 and momentum 0.9, each keeping
its own state. byzrun is built from the presets that stand for the code (experiment=table1_mnist or,
with --backdoor, table2_mnist, and the "(ALIE code)" cell of the chosen rule) and runs the steps of
byzrun/train.py's round; the code runs Server.dispatch_weights, the attack, collect_gradients and
defend, as its main.py does. Each round compares:
  1. the normalised images and labels of every worker's batch (the code's DataLoader shards vs
     byzrun's train_x at WorkerSampler's indices);
  2. every worker's honest gradient (byzrun row i is the code's user (i + m) mod n);
  3. the attackers' mean and population std over their own gradients and the vector they send
     (ALIE z=1.5; with --backdoor the code's BackdoorAttack, z = alpha = 0.2, whose random sample
     set is read from the code's attacker and given to byzrun as own_set: the trigger, the start
     V_0, the trained V);
  4. the rule's output and, for Krum and Bulyan, the rows it picked;
  5. the server momentum and the parameters after the step, the test accuracy, and with --backdoor
     the backdoor accuracy on the attacker's triggered images.
It prints `step | max abs diff | relative diff | verdict` (relative: to the largest |value| of the
code's side) and exits 0 when every step agrees within float32 noise (relative 1e-4), 1 otherwise.
Known difference: from round 2 on, the code's backdoor attacker converts with its fading lr
0.1*10000/(t+10000) while byzrun uses the server's 0.1; such rounds are marked "expected".

Get the code and the data:
  git clone https://github.com/moranant/attacking_distributed_learning DIR
  MNIST's four idx files, uncompressed, in DIR/mnist_data/MNIST/raw/
Run from the repository root (byzrun reads data/MNIST/raw/):
  OMP_NUM_THREADS=1 .venv/bin/python scripts/compare_alie_code.py --alie-code DIR --defense Krum
Options: --rounds K, --defense NoDefense|TrimmedMean|Krum|Bulyan, --backdoor, --seed S. The code's
TrimmedMean loops over the 79,510 coordinates in Python: a few seconds a round.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from byzrun.attacks import stats  # noqa: E402
from byzrun.attacks.base import AttackContext  # noqa: E402
from byzrun.train import learning_rate, prepare  # noqa: E402

N, MAL_PROP, BATCH, LR, FADING, BETA = 51, 0.24, 128, 0.1, 10000, 0.9  # the code's main.py defaults
CODE_ALPHA, MAL_EPOCHS = 4, 5  # main.py: NLL + 4 * distance, 5 passes
REL_TOL = 1e-4
CELLS = {"NoDefense": "no_defense", "TrimmedMean": "trimmed_mean_alie_code"}
CELLS.update(Krum="krum_alie_code", Bulyan="bulyan_alie_code")


def to_numpy(value):
    return value.detach().cpu().numpy() if torch.is_tensor(value) else value


class Table:
    def __init__(self) -> None:
        self.failed: list[str] = []

    def row(self, step: str, diff: float, rel: float, ok: bool, verdict: str, expected: str | None) -> None:
        if not ok:
            verdict = f"{verdict} (expected: {expected})" if expected else verdict
            if not expected:
                self.failed.append(step)
        print(f"{step:<34} | {diff:>13.3e} | {rel:>13.3e} | {verdict}")

    def compare(self, step, code, byz, tol=REL_TOL, atol=0.0, expected=None, note="") -> None:
        a = np.asarray(code, dtype=np.float64)
        b = np.asarray(to_numpy(byz), dtype=np.float64)
        if a.shape != b.shape:
            return self.row(step, np.nan, np.nan, False, f"DIFF shapes {a.shape} vs {b.shape}", expected)
        diff = float(np.abs(a - b).max()) if a.size else 0.0
        rel = diff / max(float(np.abs(a).max()), 1e-30) if a.size else 0.0
        ok = rel <= tol or diff <= atol
        self.row(step, diff, rel, ok, f"ok{note}" if ok else "DIFF", expected)


# ---------------------------------------------------------------------------- the authors' code


class CodeRun:
    """The code's users, server and attacker, with recorders around the functions whose
    intermediate results main.py never keeps."""

    def __init__(self, directory: Path, backdoor: bool, z: float, seed: int):
        sys.path.insert(0, str(directory))
        os.chdir(directory)  # its datasets live in ./mnist_data
        names = ("data_sets", "user", "server", "defences", "malicious", "backdoor")
        self.mod = SimpleNamespace(**{name: importlib.import_module(name) for name in names})
        warnings.filterwarnings("ignore", message="To copy construct")  # its backdoor.py's torch.tensor(t)
        np.random.seed(seed)
        torch.manual_seed(seed)
        self.m = int(MAL_PROP * N)
        mod, self.rec = self.mod, {}
        self.users = [mod.user.User(i, BATCH, i < self.m, N, BETA, "MNIST") for i in range(N)]
        self.server = mod.server.Server(self.users, MAL_PROP, BATCH, LR, FADING, BETA, "MNIST")
        self.backdoor = backdoor
        if backdoor:
            self.attacker = mod.backdoor.BackdoorAttack(
                z, CODE_ALPHA, "MNIST", loss="MSE", backdoor="pattern", num_epochs=MAL_EPOCHS,
                my_print=lambda *a, **k: None,
            )  # fmt: skip
            self._wrap(
                self.attacker, "train_malicious_network", lambda out, start: {"start": start, "V": out}
            )
        else:
            self.attacker = mod.malicious.DriftAttack(z)
        self._wrap(
            self.attacker, "_attack_grads", lambda out, mean, std, _, lr: {"mu": mean, "sigma": std, "lr": lr}
        )
        for u in self.users:
            self._wrap(
                u, "train", lambda out, data, target, u=u: {f"x{u.user_id}": data, f"y{u.user_id}": target}
            )
        self._record_rules()

    def _recorded(self, fn, keep):
        """fn, storing copies of what keep(out, *args) selects from its result and arguments."""

        def recorded(*args):
            copies = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
            out = fn(*args)
            self.rec.update({k: np.array(to_numpy(v), copy=True) for k, v in keep(out, *copies).items()})
            return out

        return recorded

    def _wrap(self, obj, name: str, keep) -> None:
        setattr(obj, name, self._recorded(getattr(obj, name), keep))

    def _record_rules(self) -> None:
        """Record each rule's output, and the index of every Krum pick (Krum, Bulyan's selection)."""
        defences, self.picks = self.mod.defences, []
        krum = defences.krum

        def krum_with_index(users_grads, users_count, corrupted_count, distances=None, return_index=False):
            self.picks.append(krum(users_grads, users_count, corrupted_count, distances, True))
            return krum(users_grads, users_count, corrupted_count, distances, return_index)

        defences.krum = defences.defend["Krum"] = krum_with_index  # bulyan() calls the module's krum
        for name, rule in list(defences.defend.items()):
            defences.defend[name] = self._recorded(rule, lambda out, *_: {"aggregate": out})

    def round(self, t: int, defense: str) -> dict:
        self.rec, self.picks[:] = {}, []
        s = self.server
        s.dispatch_weights(t)
        self.rec["grads"] = np.stack([u.grads for u in self.users])
        self.attacker.attack([u for u in self.users if u.is_malicious])
        s.collect_gradients()
        self.rec["sent"] = s.users_grads[: self.m].copy()
        s.defend(defense, t)
        self.rec.update(picks=list(self.picks), params=s.current_weights.copy(), velocity=s.velocity.copy())
        _, correct = s.test()
        self.rec["test_acc"] = 100.0 * float(correct) / len(s.test_loader.dataset)
        if self.backdoor:
            self.attacker.init_malicious_network(s.current_weights)
            self.rec["backdoor_acc"] = self.attacker.test_malicious_network("POST", to_print=False)
        return self.rec


# ---------------------------------------------------------------------------- byzrun


class ByzrunRun:
    """byzrun built from the presets that stand for the code; round() is train.py's round for this
    configuration (no augmentation, weight decay, clipping or worker momentum; server momentum)."""

    def __init__(self, defense: str, backdoor: bool, results_dir: str):
        from hydra import compose, initialize_config_dir

        table = "table2" if backdoor else "table1"
        cell = "no_defense_alie_code" if backdoor and defense == "NoDefense" else CELLS[defense]
        overrides = [f"experiment={table}_mnist", f"cell={table}/{cell}", "device=cpu", "progress=false"]
        overrides += [f"results_dir={results_dir}", f"dataset.root={REPO / 'data'}", "dataset.download=false"]
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
        setting = (cfg.n, cfg.m, cfg.batch_size, cfg.lr, cfg.sampling)  # the code's, or the test is void
        assert setting == (N, int(MAL_PROP * N), BATCH, LR, "alie_code"), setting
        assert cfg.momentum.placement == "server" and cfg.momentum.beta == BETA and not cfg.momentum.nesterov
        assert not cfg.weight_decay and cfg.grad_clip is None and not cfg.dataset.augment
        self.cfg, self.s = cfg, prepare(cfg)
        self.velocity = torch.zeros_like(self.s.model.theta)  # the server's momentum buffer
        self.rec: dict = {}
        if backdoor:
            train = self.s.attack.train

            def recorded_train(model, start, server_lr):
                v = train(model, start, server_lr)
                self.rec.update(start=start.clone(), V=v.clone())
                return v

            self.s.attack.train = recorded_train

    def round(self, t: int) -> dict:
        s, cfg, self.rec = self.s, self.cfg, {}
        model, n, m = s.model, cfg.n, cfg.m
        lr = learning_rate(cfg, t)
        idx = s.sampler.next()
        x, y = s.data.train_x[idx], s.data.train_y[idx]
        G, _ = model.worker_grads(x, y)
        self.rec.update(x=x, y=y, grads=G.clone())
        ctx = AttackContext(
            honest=G[: n - m], own=G[n - m :], n=n, m=m, round=t, defense=s.defense, model=model, lr=lr
        )
        self.rec["mu"], self.rec["sigma"] = stats.mean_std(
            stats.observed(ctx, s.attack.knowledge), s.attack.std
        )
        G[n - m :] = s.attack(ctx)
        aggregate = s.defense(G, m)
        self.velocity.mul_(cfg.momentum.beta).add_(aggregate)
        model.theta.add_(self.velocity, alpha=-lr)
        picks = s.defense.selection(G, m)
        self.rec.update(sent=G[n - m :], aggregate=aggregate, picks=picks, params=model.theta.clone())
        self.rec.update(
            velocity=-lr * self.velocity, test_acc=model.evaluate(s.data.test_x, s.data.test_y)[0]
        )
        if hasattr(s.attack, "own_accuracy"):
            self.rec["backdoor_acc"] = s.attack.own_accuracy(model)
        return self.rec


# ---------------------------------------------------------------------------- comparison


def align(code: CodeRun, byz: ByzrunRun) -> torch.Tensor:
    """Copy the code's initial parameters into byzrun; returns the permutation taking a byzrun flat
    vector into the code's parameter order (identity when both list the same tensors in order)."""
    model, offsets, start = byz.s.model, {}, 0
    for name, numel, shape in zip(model.names, model.numels, model.shapes):
        offsets[name], start = (start, numel, tuple(shape)), start + numel
    net = code.server.test_net
    layout = [(name, tuple(p.shape)) for name, p in net.named_parameters()]
    if sorted(layout) != sorted((name, v[2]) for name, v in offsets.items()):
        sys.exit(f"parameter layouts differ: code {layout}, byzrun {list(zip(model.names, model.shapes))}")
    perm = torch.cat([torch.arange(offsets[name][0], sum(offsets[name][:2])) for name, _ in layout])
    model.theta[perm] = torch.from_numpy(code.server.current_weights.copy())
    print(f"parameter layout {layout}: {'same order' if bool((perm.diff() == 1).all()) else 'mapped'}")
    return perm


def compare_trigger(table: Table, code: CodeRun, byz: ByzrunRun) -> None:
    """The backdoor sample set: give byzrun the code's (a random DistributedSampler rank) and
    compare the triggered images and their labels."""
    own = torch.tensor(list(code.attacker.train_loader.sampler))
    byz.s.attack.own_set = own
    xs, ys = zip(*code.attacker.train_loader)
    x, y = byz.s.attack.triggered(own, torch.float32)
    sampler = code.attacker.train_loader.sampler
    print(
        f"attacker's set: {len(own)} images, DistributedSampler rank {sampler.rank} of {sampler.num_replicas}"
    )
    table.compare("6. triggered images (own set)", torch.cat(xs).numpy(), x)
    table.compare("6. their labels (all 0)", torch.cat(ys).numpy() * 0, y, tol=0)


def compare_picks(table: Table, c: dict, b: dict, perm: torch.Tensor, m: int, expected: str | None) -> None:
    """Krum/Bulyan: the vectors picked, in pick order, and whether the indices agree (mapped to
    byzrun rows). The code takes the first minimum in its distance dict's key order, which runs
    1, 0, 2, 3, ...; byzrun the lowest row: among identical submissions they may differ."""
    rows = (np.arange(N) - m) % N
    code_sub = np.concatenate([c["sent"], c["grads"][m:]])  # what the code's users submitted
    byz_sub = torch.cat([b["grads"][: N - m], b["sent"]])[:, perm]
    code_picks, byz_picks = [int(rows[u]) for u in c["picks"]], b["picks"].tolist()
    note = " (same rows)" if code_picks == byz_picks else " (other rows, identical vectors)"
    table.compare("4. vectors picked", code_sub[c["picks"]], byz_sub[byz_picks], expected=expected, note=note)
    print(f"   picks as byzrun rows: code {code_picks}\n                         byzrun {byz_picks}")


def compare_round(table: Table, t: int, c: dict, b: dict, perm: torch.Tensor, m: int, backdoor: bool) -> None:
    rows = (np.arange(N) - m) % N  # byzrun row of the code's user u
    expected = f"the code converts with lr {float(c['lr']):.6g}" if backdoor and t > 0 else None

    def cmp(step, code_value, byz_value, **kw):
        table.compare(step, code_value, byz_value, expected=kw.pop("expected", expected), **kw)

    print(
        f"\nround {t + 1}\n{'step':<34} | {'max abs diff':>13} | {'relative diff':>13} | verdict\n{'-' * 80}"
    )
    x, y = np.stack([c[f"x{u}"] for u in range(N)]), np.stack([c[f"y{u}"] for u in range(N)])
    cmp("1. batch images (51 workers)", x, b["x"][rows], expected=None)  # no lr in these
    cmp("1. batch labels", y, b["y"][rows], tol=0, expected=None)
    cmp("2. honest gradients (51 workers)", c["grads"], b["grads"][rows][:, perm])
    cmp("3. attackers' mean", c["mu"], b["mu"][perm])
    cmp("3. attackers' std (population)", c["sigma"], b["sigma"][perm])
    if backdoor:
        cmp("6. V_0 = theta - lr*mu", c["start"], b["start"][perm])
        cmp("6. V after local training", c["V"], b["V"][perm])
    cmp("3. sent vectors (12 rows)", c["sent"], b["sent"][:, perm])
    cmp("4. rule's output", c["aggregate"], b["aggregate"][perm])
    if b["picks"] is not None:
        compare_picks(table, c, b, perm, m, expected)
    cmp("5. server velocity (the code's v; byzrun: -lr*velocity)", c["velocity"], b["velocity"][perm])
    cmp("5. parameters after the step", c["params"], b["params"][perm])
    cmp("5. test accuracy (%)", c["test_acc"], b["test_acc"], tol=0, atol=1e-3)  # 1 image: 0.01
    if backdoor:
        cmp("6. backdoor accuracy, own set (%)", c["backdoor_acc"], b["backdoor_acc"], tol=0, atol=1e-3)
        print(f"   test accuracy {c['test_acc']:.2f}%, backdoor accuracy {c['backdoor_acc']:.2f}%")
    else:
        print(f"   test accuracy {c['test_acc']:.2f}%")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alie-code", type=Path, required=True, help="checkout of the authors' code")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--defense", choices=list(CELLS), default="NoDefense")
    parser.add_argument("--backdoor", action="store_true", help="the code's backdoor attack, z = alpha = 0.2")
    parser.add_argument("--seed", type=int, default=0, help="seeds the code's initial weights and sample set")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as results_dir:
        byz = ByzrunRun(args.defense, args.backdoor, results_dir)
        z = float(byz.s.attack.z)
        code = CodeRun(args.alie_code.resolve(), args.backdoor, z, args.seed)
        print(f"{args.defense}, {'backdoor' if args.backdoor else 'ALIE'} z={z}, {args.rounds} round(s)")
        perm, table = align(code, byz), Table()
        if args.backdoor:
            compare_trigger(table, code, byz)
        for t in range(args.rounds):
            compare_round(table, t, code.round(t, args.defense), byz.round(t), perm, code.m, args.backdoor)
    took = time.perf_counter() - started
    if table.failed:
        print(f"\nMISMATCH in {len(table.failed)} step(s): {', '.join(table.failed)} ({took:.0f} s)")
        return 1
    print(f"\nALL STEPS AGREE within relative {REL_TOL:g} over {args.rounds} round(s) ({took:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
