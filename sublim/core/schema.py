"""What stored numbers refer to: the model's input and output layout and the step trace's columns.

`TRACE_SCHEMA` is the one definition of `trace.parquet`: the trial writes it and the report reads it.
"""

from __future__ import annotations

import pyarrow as pa

IMAGE_PIXELS = 784  # 28 × 28, flattened
NUM_CLASSES = 10  # outputs 0-9 are the class logits, 10.. the auxiliary logits
LAYER_NAMES = ("fc1", "fc2", "out")  # the MLP's linear layers: 784 → h → h → 10 + m

_FLOAT_COLUMNS = {
    "t": "fraction of training done at the step",
    "distill_loss": "distillation loss of the batch",
    "trait_loss": "cross-entropy of the class logits on the probe batch",
    "mitigation_loss": "the mitigation's loss term before its weight (NaN when it has none)",
    "mitigation_weight": "liminal: s · w(t); projection and placebo: the coefficient c of c · g_t that "
                         "projection removes (placebo moves the step by ‖c · g_t‖ orthogonally to g_t); a "
                         "plugin: the coefficient its step returns",
    "alignment": "cos(g_d, g_t)",
    "applied_alignment": "cos(gradient handed to the optimizer, g_t)",
    "dot": "g_d · g_t",
    "distill_norm": "‖g_d‖",
    "trait_norm": "‖g_t‖",
    **{f"alignment_{name}": f"cos(g_d, g_t) over layer {name}'s weights and bias" for name in LAYER_NAMES},
    "update_alignment": "cos(−Δθ, g_t): the parameter change the optimizer applied, against the trait gradient",
    "update_trait_change": "g_t · Δθ: the first-order change of the probe trait loss that the step predicts",
}

TRACE_SCHEMA = pa.schema(
    [pa.field("step", pa.int64(), nullable=False, metadata={"doc": "optimizer step, from 0"}),
     pa.field("epoch", pa.int64(), nullable=False, metadata={"doc": "distillation epoch, from 1"})]
    + [pa.field(name, pa.float64(), metadata={"doc": doc}) for name, doc in _FLOAT_COLUMNS.items()]
)
TRACE_COLUMNS: tuple[str, ...] = tuple(TRACE_SCHEMA.names)


def trace_table(columns: dict[str, object]) -> pa.Table:
    """The trace as a table of `TRACE_SCHEMA`, from one array per column (whole-number floats allowed for step and epoch)."""
    missing = [name for name in TRACE_COLUMNS if name not in columns]
    if missing:
        raise ValueError(f"trace lacks column(s) {', '.join(missing)}")
    arrays = [pa.array(columns[field.name]).cast(field.type) for field in TRACE_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=TRACE_SCHEMA)

# The fields of a finished trial's `summary.json`: the trial writes exactly these; a results folder's
# reader takes a summary lacking any of them for damaged.
SUMMARY_FIELDS = (
    "arm", "teacher_key", "teacher_acc", "student_acc_before", "student_acc", "trait_gain", "mean_alignment",
    "frac_positive_steps", "mean_applied_alignment", "acc_by_epoch", "alignment_by_epoch", "frac_positive_by_epoch",
    "applied_alignment_by_epoch", "mean_update_alignment", "update_alignment_by_epoch", "epochs_done", "steps", "final_distill_loss", "teacher_seconds",
    "student_seconds", "seconds", "versions", "config",
)
SUMMARY_COUNTS = ("epochs_done", "steps")  # the summary's integer counts
