"""Small models the end-to-end tests build in the test run itself (nothing downloaded)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from make_resnet import make_model as make_resnet  # noqa: E402


class TinyEncoder(nn.Module):
    """Embedding + one pre-norm transformer block with hand-written multi-head attention.

    Traced, it yields aten::size / prim::NumToTensor / aten::Int (the head reshapes use the
    runtime batch and sequence sizes) and aten::scaled_dot_product_attention.
    """

    def __init__(self, vocab: int = 50, dim: int = 32, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.embed = nn.Embedding(vocab, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(0.1), nn.Linear(2 * dim, dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) * math.sqrt(self.embed.embedding_dim)
        batch, seq, dim = x.size(0), x.size(1), x.size(2)
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        q = q.reshape(batch, seq, self.heads, dim // self.heads).transpose(1, 2)
        k = k.reshape(batch, seq, self.heads, dim // self.heads).transpose(1, 2)
        v = v.reshape(batch, seq, self.heads, dim // self.heads).transpose(1, 2)
        attended = F.scaled_dot_product_attention(q, k, v)
        x = x + self.proj(attended.transpose(1, 2).reshape(batch, seq, dim))
        x = x + self.mlp(self.norm2(x))
        return x.mean(dim=1)


class IfAndLoop(nn.Module):
    """Scripted: data-dependent If and a loop whose trip count is an input size."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(16, 16)
        self.gate = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.linear(x))
        if bool(h.sum() > 0):
            h = h * 2.0 + 1.0
        else:
            h = h - 1.0
        for _ in range(x.size(0)):
            h = torch.tanh(self.gate(h)) + h
        return h


class FftInTheMiddle(nn.Module):
    """Conv -> rfft (complex; no engine supports it) -> abs -> linear: engine/glue/engine."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 3, padding=1)
        self.bn = nn.BatchNorm1d(8)
        self.linear = nn.Linear(9, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.conv(x)))
        spectrum = torch.fft.rfft(y, dim=-1)
        return self.linear(spectrum.abs()).sigmoid()


class TwoInTupleOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(8, 8)
        self.b = nn.Linear(6, 8)

    def forward(self, x: torch.Tensor, y: torch.Tensor):
        left = torch.relu(self.a(x))
        right = self.b(y)
        return left + right, torch.cat([left, right], dim=1).softmax(dim=-1)


def _eval(model: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def save_resnet(path: Path) -> Path:
    torch.jit.save(torch.jit.trace(make_resnet(), torch.randn(2, 3, 32, 32)), str(path))
    return path


def save_encoder(path: Path) -> Path:
    torch.manual_seed(0)
    model = _eval(TinyEncoder())
    torch.jit.save(torch.jit.trace(model, torch.randint(0, 50, (2, 7))), str(path))
    return path


def save_if_and_loop(path: Path) -> Path:
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(_eval(IfAndLoop())), str(path))
    return path


def save_fft(path: Path) -> Path:
    torch.manual_seed(0)
    torch.jit.save(torch.jit.trace(_eval(FftInTheMiddle()), torch.randn(2, 4, 16)), str(path))
    return path


def save_two_in_tuple_out(path: Path) -> Path:
    torch.manual_seed(0)
    model = _eval(TwoInTupleOut())
    torch.jit.save(torch.jit.trace(model, (torch.randn(2, 8), torch.randn(2, 6))), str(path))
    return path
