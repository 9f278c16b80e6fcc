"""Linear-attention (Gated DeltaNet) layers: shapes, parameters, recurrent state and FLOPs.

Qwen3-Next and Qwen3.5 interleave Gated DeltaNet layers with full-attention layers. A DeltaNet
layer projects each token to q and k (`num_key_heads` heads of `key_head_dim`), v and a gate z
(`num_value_heads` heads of `value_head_dim`) and two per-value-head scalars (decay a, write
strength b); q, k and v pass a short causal depthwise convolution of `conv_kernel_tokens` taps;
then each value head updates a (key_head_dim x value_head_dim) state matrix once per token and
reads its output from it; a gated norm and the output projection follow.

What serving sees: the state is a fixed size per sequence (no per-token KV), kept in
`state_dtype` (fp32: SGLang's default `--mamba-ssm-dtype`), and the conv keeps the last
kernel-1 tokens of its input in 16-bit activations. The recurrent update costs FLOPs per token
proportional to value heads x key dim x value dim whatever the context, prefill and decode
alike: RECURRENT_FLOPS_PER_STATE_VALUE counts four passes over the state (decay, k^T S, the
rank-one write, q^T S) at 2 FLOPs each; the chunked prefill kernel does about as much plus a
small intra-chunk term, left out.
"""

from __future__ import annotations

from dataclasses import dataclass

from servesim.errors import InputError

RECURRENT_FLOPS_PER_STATE_VALUE = 8.0
STATE_DTYPES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0}
CONV_STATE_BYTES = 2.0  # the conv window is kept in 16-bit activations


@dataclass(frozen=True, slots=True)
class LinearAttention:
    """Shape of one Gated DeltaNet layer (all its layers share it)."""

    num_key_heads: int
    num_value_heads: int
    key_head_dim: int
    value_head_dim: int
    conv_kernel_tokens: int
    state_dtype: str = "fp32"

    def __post_init__(self) -> None:
        for field in (
            "num_key_heads",
            "num_value_heads",
            "key_head_dim",
            "value_head_dim",
            "conv_kernel_tokens",
        ):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InputError(f"model.linear_attention.{field}", value, "a positive integer")
        if self.num_value_heads % self.num_key_heads:
            raise InputError(
                "model.linear_attention.num_value_heads",
                self.num_value_heads,
                f"a multiple of num_key_heads={self.num_key_heads}",
            )
        if self.state_dtype not in STATE_DTYPES:
            raise InputError(
                "model.linear_attention.state_dtype",
                self.state_dtype,
                f"one of {', '.join(STATE_DTYPES)}",
            )

    @property
    def key_dim(self) -> int:
        """Width of q (and of k) over all key heads."""
        return self.num_key_heads * self.key_head_dim

    @property
    def value_dim(self) -> int:
        """Width of v (and of z and the output) over all value heads."""
        return self.num_value_heads * self.value_head_dim

    @property
    def conv_channels(self) -> int:
        """Channels of the causal conv: q, k and v."""
        return 2 * self.key_dim + self.value_dim

    def params(self, hidden_size: int) -> int:
        """Parameters of one layer: input projections (q, k, v, z, a, b), conv taps, per-head
        decay and time-step biases, the gated norm's weight, and the output projection."""
        in_proj = hidden_size * (self.conv_channels + self.value_dim + 2 * self.num_value_heads)
        conv = self.conv_channels * self.conv_kernel_tokens
        per_head = 2 * self.num_value_heads
        out_proj = self.value_dim * hidden_size
        return in_proj + conv + per_head + self.value_head_dim + out_proj

    @property
    def state_values(self) -> int:
        """Values of one sequence's recurrent state in one layer."""
        return self.num_value_heads * self.key_head_dim * self.value_head_dim

    @property
    def state_bytes(self) -> float:
        """One sequence's recurrent state plus conv window in one layer, in bytes."""
        conv = (self.conv_kernel_tokens - 1) * self.conv_channels * CONV_STATE_BYTES
        return self.state_values * STATE_DTYPES[self.state_dtype] + conv

    @property
    def recurrent_flops_per_token(self) -> float:
        """FLOPs of the state update and read-out for one token in one layer (not the
        projections, which are GEMMs counted with the parameters)."""
        return RECURRENT_FLOPS_PER_STATE_VALUE * self.state_values
