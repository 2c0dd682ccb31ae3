"""Bad-input cases: numeric command-line flags. Every one is refused while the command
line is parsed or by the cross-field checks at the top of the command, before any
training, data loading or hardware: each case returns in well under a second."""

from __future__ import annotations

from pathlib import Path

from badcase import Case


def cli(*args: str):
    """A case that runs ``cimstack ARGS`` in the case folder (no file needed)."""
    return lambda folder: list(args)


def _with_bundle_dir(*args: str):
    """``cimstack ARGS`` where ``bundle`` names an (empty) folder in the case folder."""
    def setup(folder: Path):
        (folder / "bundle").mkdir()
        return list(args)
    return setup


CASES = [
    # cimstack train: ranges checked by typer, cross-field rules before training
    Case("flag-train-epochs-negative", cli("train", "--epochs", "-1"),
         r"Invalid value for '--epochs'.*(greater than or equal to 1|>=1)"),
    Case("flag-train-acim-epochs-zero", cli("train", "--macro", "acim", "--epochs", "0"),
         r"Invalid value for '--epochs'"),
    Case("flag-train-rows-on-zero", cli("train", "--rows-on", "0"),
         r"Invalid value for '--rows-on'"),
    Case("flag-train-rows-on-not-divisor", cli("train", "--rows-on", "24"),
         r"rows_on = 24 must divide rows = 256"),
    Case("flag-train-acim-w-bits-list", cli("train", "--macro", "acim", "--w-bits", "4,4"),
         r"--w-bits 4,4: give one bit width \(this macro takes one for every layer\)"),
    Case("flag-train-acim-w-bits-1", cli("train", "--macro", "acim", "--w-bits", "1"),
         r"--w-bits 1: the analog model trains 2\.\.8-bit weights"),
    Case("flag-train-w-bits-9", cli("train", "--w-bits", "9"),
         r"--w-bits 9: w_bits = 9 is out of range: allowed 1\.\.8"),
    Case("flag-train-a-bits-count", cli("train", "--a-bits", "8,8,8"),
         r"--a-bits 8,8,8: give one bit width or 2 \(one per layer\)"),
    Case("flag-train-w-bits-text", cli("train", "--w-bits", "eight"),
         r"--w-bits 'eight' is not a bit width"),
    Case("flag-train-sparsity-1.5", cli("train", "--sparsity", "1.5"),
         r"--sparsity = 1\.5 is out of range: allowed \[0\.0, 1\.0\)"),
    Case("flag-train-sparsity-nan", cli("train", "--sparsity", "nan"),
         r"--sparsity = nan is not a finite number"),
    Case("flag-train-sigma-negative", cli("train", "--macro", "acim", "--sigma", "-1"),
         r"--sigma = -1\.0 is out of range: allowed \[0\.0, 16\.0\]"),
    Case("flag-train-sigma-nan", cli("train", "--macro", "acim", "--sigma", "nan"),
         r"--sigma = nan is not a finite number"),
    Case("flag-train-train-sigma-inf", cli("train", "--macro", "acim", "--train-sigma", "inf"),
         r"--train-sigma = inf is not a finite number"),
    Case("flag-train-adc-bits-9", cli("train", "--macro", "acim", "--adc-bits", "9"),
         r"Invalid value for '--adc-bits'"),
    Case("flag-train-psum-bits-0", cli("train", "--psum-bits", "0"),
         r"Invalid value for '--psum-bits'"),
    Case("flag-train-seed-too-big", cli("train", "--seed", str(2**32)),
         r"Invalid value for '--seed'"),
    Case("flag-train-macro-unknown", cli("train", "--macro", "xcim"),
         r"unknown macro 'xcim': choose dcim or acim"),
    # cimstack demo / export / verify
    Case("flag-demo-sparsity-negative", cli("demo", "--sparsity", "-0.1"),
         r"--sparsity = -0\.1 is out of range"),
    Case("flag-demo-w-bits-count", cli("demo", "--w-bits", "8,8"),
         r"--w-bits 8,8: give one bit width or 3"),
    Case("flag-demo-seed-negative", cli("demo", "--seed", "-1"),
         r"Invalid value for '--seed'"),
    Case("flag-export-psum-bits-17", cli("export", "ck.pt", "--psum-bits", "17"),
         r"Invalid value for '--psum-bits'"),
    Case("flag-verify-limit-negative", _with_bundle_dir("verify", "bundle", "--limit", "-5"),
         r"Invalid value for '--limit'"),
    Case("flag-verify-min-identical-1.5", _with_bundle_dir(
        "verify", "bundle", "--against", "m.onnx", "--min-identical", "1.5"),
         r"--min-identical = 1\.5 is out of range: allowed \[0\.0, 1\.0\]"),
    Case("flag-verify-min-agreement-nan", _with_bundle_dir(
        "verify", "bundle", "--against", "m.onnx", "--min-agreement", "nan"),
         r"--min-agreement = nan is not a finite number"),
    # cimstack snn ...
    Case("flag-snn-train-steps-zero", cli("snn", "train", "--steps", "0"),
         r"Invalid value for '--steps'"),
    Case("flag-snn-train-v-bits-1", cli("snn", "train", "--v-bits", "1"),
         r"Invalid value for '--v-bits'"),
    Case("flag-snn-demo-epochs-zero", cli("snn", "demo", "--epochs", "0"),
         r"Invalid value for '--epochs'"),
    Case("flag-snn-demo-verify-samples-zero", cli("snn", "demo", "--verify-samples", "0"),
         r"Invalid value for '--verify-samples'"),
    Case("flag-snn-verify-samples-zero", _with_bundle_dir("snn", "verify", "bundle",
                                                          "--samples", "0"),
         r"Invalid value for '--samples'"),
    # cost, study, sweep, board
    Case("flag-cost-batch-zero", cli("cost", "--batch", "0"), r"Invalid value for '--batch'"),
    Case("flag-cost-samples-negative", cli("cost", "--samples", "-3"),
         r"Invalid value for '--samples'"),
    Case("flag-study-active-rows-2000", cli("study", "analog", "--active-rows", "2000"),
         r"Invalid value for '--active-rows'"),
    Case("flag-study-train-sigma-inf", cli("study", "analog", "--train-sigma", "inf"),
         r"--train-sigma = inf is not a finite number"),
    Case("flag-study-epochs-zero", cli("study", "analog", "--epochs", "0"),
         r"Invalid value for '--epochs'"),
    Case("flag-sweep-workers-negative", cli("sweep", "--workers", "-1"),
         r"Invalid value for '--workers'"),
    Case("flag-sweep-point-timeout-nan", cli("sweep", "--point-timeout", "nan"),
         r"--point-timeout = nan is not a finite number"),
    Case("flag-sweep-connect-timeout-negative", cli("sweep", "--connect-timeout", "-1"),
         r"--connect-timeout = -1\.0 is out of range"),
    Case("flag-board-exec-timeout-zero", cli("board", "exec", "ls", "--timeout", "0"),
         r"--timeout = 0\.0 is out of range"),
]

CASES += [
    Case("flag-run-random-zero", cli("run", "b", "--random", "0"),
         r"Invalid value for '--random'"),
]
