"""
A hand-written GPT with two block styles and a leading run axis on every weight.

    pythia  (GPT-NeoX): parallel residual x + attn(ln1(x)) + mlp(ln2(x)), LayerNorm with bias,
            exact-GeLU MLP, rotary on a fraction of each head's dims, untied embeddings.
    gemma2: RMSNorm scaled by (1 + w), norms before and after attention and MLP, GeGLU MLP,
            embeddings scaled by sqrt(d) and tied, full RoPE, tanh soft-caps on attention
            logits and final logits.

Given the same weights, each produces the logits of the Hugging Face implementation
(GPTNeoXForCausalLM, Gemma2ForCausalLM); tests/test_model.py checks it.

Every weight has shape (E, ...): one module holds E independent models (a sweep trained in
lockstep) and every matmul is one batched matmul over the run axis. A single run is E = 1.
Linear weights are stored as (E, in, out) so that y = x @ W is torch.baddbmm(b, x, W) with
x of shape (E, B*T, in). Run r is initialised from its own torch.Generator(seeds[r]), so its
init does not depend on how many runs share the module.
"""
import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F

BLOCKS = ('pythia', 'gemma2')
# block-style defaults for the knobs left at None
BLOCK_DEFAULTS = {
    'pythia': dict(rotary_pct=0.25, norm_eps=1e-5, attn_softcap=0.0, final_softcap=0.0),
    'gemma2': dict(rotary_pct=1.0, norm_eps=1e-6, attn_softcap=50.0, final_softcap=30.0),
}


@dataclass
class GPTConfig:
    block: str = 'pythia'         # 'pythia' (GPT-NeoX) or 'gemma2'
    n_layer: int = 6              # Pythia-14m's shape: 6 layers, 4 heads, d=128
    n_head: int = 4
    n_embd: int = 128
    vocab_size: int = 1024        # set from the dataset's vocabulary
    block_size: int = 64          # longest sequence (sizes the RoPE tables)
    n_runs: int = 1               # E: independent models stacked on a leading axis
    mlp_ratio: float = 4.0        # MLP width / n_embd (for gemma2: width of each GeGLU half)
    rotary_pct: float = None      # share of each head's dims that get RoPE (None: 0.25 pythia, 1.0 gemma2)
    rope_base: float = 10000.0    # RoPE frequency base
    norm_eps: float = None        # None: 1e-5 (LayerNorm, pythia), 1e-6 (RMSNorm, gemma2)
    attn_softcap: float = None    # cap*tanh(x/cap) on attention logits; 0 = off (None: 0 pythia, 50 gemma2)
    final_softcap: float = None   # same on the output logits; 0 = off (None: 0 pythia, 30 gemma2)
    query_pre_attn_scalar: float = None  # attention scale = this ** -0.5 (None: head dim)
    init_std: float = 0.02        # std of the normal init of matrices and embeddings

    def __post_init__(self):
        if self.block not in BLOCKS:
            raise ValueError(f"model config error: block={self.block!r} is not one of {', '.join(BLOCKS)}")
        for k, v in BLOCK_DEFAULTS[self.block].items():
            if getattr(self, k) is None:
                setattr(self, k, v)
        for k in ('n_layer', 'n_head', 'n_embd', 'vocab_size', 'block_size', 'n_runs'):
            if not isinstance(getattr(self, k), int) or getattr(self, k) < 1:
                raise ValueError(f"model config error: {k}={getattr(self, k)!r} must be a positive int")
        if self.n_embd % self.n_head:
            raise ValueError(f"model config error: n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        hs = self.n_embd // self.n_head
        if self.query_pre_attn_scalar is None:
            self.query_pre_attn_scalar = float(hs)
        rot = int(hs * self.rotary_pct)
        if not 0.0 <= self.rotary_pct <= 1.0 or rot % 2:
            raise ValueError(f"model config error: rotary_pct={self.rotary_pct} must give an even number "
                             f"of rotary dims per head (head dim {hs})")


# ----------------------------------------------------------------------------------------------
# building blocks; x is (E, N, d) with N = B*T, per-run vectors w, b are (E, d)

def layer_norm(x, w, b, eps):
    """LayerNorm with a per-run affine: (E, N, d)."""
    return F.layer_norm(x, x.shape[-1:], eps=eps) * w.unsqueeze(1) + b.unsqueeze(1)


def rms_norm(x, w, eps):
    """Gemma's RMSNorm: computed in float32, scaled by (1 + w), w initialised to 0."""
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return (xf * (1.0 + w.float().unsqueeze(1))).type_as(x)


def linear(x, w, b=None):
    """(E, N, in) @ (E, in, out) [+ (E, out)] -> (E, N, out), one batched matmul over runs."""
    if b is None:
        return torch.bmm(x, w)
    return torch.baddbmm(b.unsqueeze(1), x, w)


def softcap(x, cap):
    return cap * torch.tanh(x / cap) if cap > 0 else x


def rope_tables(cfg):
    """cos, sin of shape (block_size, rot_dims): rotate-half layout (frequencies repeated twice)."""
    rot = int(cfg.n_embd // cfg.n_head * cfg.rotary_pct)
    inv_freq = 1.0 / (cfg.rope_base ** (torch.arange(0, rot, 2, dtype=torch.float) / rot))
    freqs = torch.arange(cfg.block_size, dtype=torch.float)[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def apply_rope(x, cos, sin):
    """x (M, T, nh, hs); cos, sin (T, rot). Rotates the first rot dims of each head, keeps the rest."""
    rot = cos.shape[-1]
    if rot == 0:
        return x
    cos, sin = cos[:, None, :].to(x.dtype), sin[:, None, :].to(x.dtype)  # (T, 1, rot)
    xr = x[..., :rot]
    x1, x2 = xr[..., :rot // 2], xr[..., rot // 2:]
    xr = xr * cos + torch.cat((-x2, x1), dim=-1) * sin
    return xr if rot == x.shape[-1] else torch.cat((xr, x[..., rot:]), dim=-1)


def attention(model, p, x, B, T):
    """Causal self-attention. x (E, B*T, d) -> (E, B*T, d)."""
    cfg = model.config
    E, nh = x.shape[0], cfg.n_head
    hs = cfg.n_embd // nh
    qkv = linear(x, p['w_qkv'], p.get('b_qkv'))               # (E, B*T, 3d), laid out [q | k | v]
    q, k, v = qkv.view(E * B, T, 3, nh, hs).unbind(2)         # each (E*B, T, nh, hs)
    cos, sin = model.rope_cos[:T], model.rope_sin[:T]
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (E*B, nh, T, hs)
    scale = cfg.query_pre_attn_scalar ** -0.5
    # soft-capped logits need an explicit softmax; T is small, so (E*B, nh, T, T) is cheap. Also in
    # bfloat16 on a CPU: there SDPA's flash kernel has a slow backward (63 of 100 ms of a step, measured)
    if cfg.attn_softcap > 0 or not model.use_sdpa or (q.device.type == 'cpu' and q.dtype != torch.float32):
        att = (q @ k.transpose(-2, -1)).float() * scale
        att = softcap(att, cfg.attn_softcap)
        att = att.masked_fill(model.future[:T, :T], float('-inf'))
        y = att.softmax(dim=-1).to(v.dtype) @ v
    else:
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
    y = y.transpose(1, 2).reshape(E, B * T, nh * hs)         # (E, B*T, d)
    return linear(y, p['w_o'], p.get('b_o'))


def pythia_block(model, p, x, B, T):
    """GPT-NeoX layer with parallel residual: x + attn(ln1(x)) + mlp(ln2(x))."""
    eps = model.config.norm_eps
    a = attention(model, p, layer_norm(x, p['ln1_w'], p['ln1_b'], eps), B, T)
    h = F.gelu(linear(layer_norm(x, p['ln2_w'], p['ln2_b'], eps), p['w_fc'], p['b_fc']))
    return x + a + linear(h, p['w_proj'], p['b_proj'])


def gemma2_block(model, p, x, B, T):
    """Gemma-2 layer: norms before and after attention and the GeGLU MLP."""
    eps = model.config.norm_eps
    x = x + rms_norm(attention(model, p, rms_norm(x, p['ln1_w'], eps), B, T), p['ln1_post_w'], eps)
    gate, up = linear(rms_norm(x, p['ln2_w'], eps), p['w_fc']).chunk(2, dim=-1)  # w_fc laid out [gate | up]
    h = F.gelu(gate, approximate='tanh') * up
    return x + rms_norm(linear(h, p['w_proj']), p['ln2_post_w'], eps)


# ----------------------------------------------------------------------------------------------

def layer_shapes(cfg):
    """{name: (shape without run axis, init)} of one layer; init in 'normal', 'resid', 'zeros', 'ones'."""
    d, h = cfg.n_embd, int(cfg.mlp_ratio * cfg.n_embd)
    if cfg.block == 'pythia':
        return {'ln1_w': ((d,), 'ones'), 'ln1_b': ((d,), 'zeros'),
                'ln2_w': ((d,), 'ones'), 'ln2_b': ((d,), 'zeros'),
                'w_qkv': ((d, 3 * d), 'normal'), 'b_qkv': ((3 * d,), 'zeros'),
                'w_o': ((d, d), 'resid'), 'b_o': ((d,), 'zeros'),
                'w_fc': ((d, h), 'normal'), 'b_fc': ((h,), 'zeros'),
                'w_proj': ((h, d), 'resid'), 'b_proj': ((d,), 'zeros')}
    return {'ln1_w': ((d,), 'zeros'), 'ln1_post_w': ((d,), 'zeros'),
            'ln2_w': ((d,), 'zeros'), 'ln2_post_w': ((d,), 'zeros'),
            'w_qkv': ((d, 3 * d), 'normal'), 'w_o': ((d, d), 'resid'),
            'w_fc': ((d, 2 * h), 'normal'), 'w_proj': ((h, d), 'resid')}


def run_offsets(n_runs, vocab_size, device=None):
    """Row offset of each run in the flattened (n_runs*V, d) embedding table: (n_runs, 1, 1)."""
    return (torch.arange(n_runs, device=device) * vocab_size).view(n_runs, 1, 1)


class GPT(nn.Module):

    def __init__(self, config, seeds=None, init=True):
        """seeds: one init seed per run; init=False leaves the weights uninitialised (to be loaded)."""
        super().__init__()
        cfg = self.config = config
        E, d, V = cfg.n_runs, cfg.n_embd, cfg.vocab_size
        seeds = list(range(E)) if seeds is None else list(seeds)
        if len(seeds) != E:
            raise ValueError(f"model error: {len(seeds)} seeds given for n_runs={E}")
        self.seeds = seeds
        # fused SDPA kernel when there is no attention soft-cap; set False under torch.func.vmap,
        # where SDPA has no batching rule and falls back to a slow per-example loop
        self.use_sdpa = True
        self.wte = nn.Parameter(torch.empty(E, V, d))         # token embedding (E, V, d)
        self.h = nn.ModuleList(
            nn.ParameterDict({k: nn.Parameter(torch.empty(E, *s)) for k, (s, _) in layer_shapes(cfg).items()})
            for _ in range(cfg.n_layer))
        if cfg.block == 'pythia':
            self.ln_f_w = nn.Parameter(torch.empty(E, d))
            self.ln_f_b = nn.Parameter(torch.empty(E, d))
            self.lm_head = nn.Parameter(torch.empty(E, V, d))  # untied output embedding
        else:
            self.ln_f_w = nn.Parameter(torch.empty(E, d))      # output reuses wte (tied)
        cos, sin = rope_tables(cfg)
        self.register_buffer('rope_cos', cos, persistent=False)  # (block_size, rot)
        self.register_buffer('rope_sin', sin, persistent=False)
        # True above the diagonal: keys a query may not see
        self.register_buffer('future', torch.ones(cfg.block_size, cfg.block_size, dtype=torch.bool).triu(1),
                             persistent=False)
        self.register_buffer('run_offset', run_offsets(E, V), persistent=False)
        if init:
            self.init_weights()

    def init_kinds(self):
        """{param name: init kind}, in a fixed order that does not depend on n_runs."""
        kinds = {'wte': 'normal'}
        for i in range(self.config.n_layer):
            kinds.update({f'h.{i}.{k}': init for k, (_, init) in layer_shapes(self.config).items()})
        ln = 'ones' if self.config.block == 'pythia' else 'zeros'
        kinds.update({'ln_f_w': ln, 'ln_f_b': 'zeros', 'lm_head': 'normal'})
        return kinds

    @torch.no_grad()
    def init_weights(self):
        """nanoGPT-style: normal(0, 0.02), residual projections scaled by 1/sqrt(2 n_layer).
        Drawn on the CPU from one generator per run, so run r
        depends on seeds[r] only."""
        cfg = self.config
        params = dict(self.named_parameters())
        std = {'normal': cfg.init_std, 'resid': cfg.init_std / math.sqrt(2 * cfg.n_layer)}
        for r, seed in enumerate(self.seeds):
            g = torch.Generator().manual_seed(int(seed))
            for name, kind in self.init_kinds().items():
                if name not in params:
                    continue
                p = params[name]
                w = p[r] if p.device.type == 'cpu' else torch.empty(p.shape[1:])  # (built under a device context)
                if kind in std:
                    w.normal_(0.0, std[kind], generator=g)
                else:
                    w.fill_(1.0 if kind == 'ones' else 0.0)
                if p.device.type != 'cpu':
                    p[r].copy_(w)

    def forward(self, idx, return_hidden=False):
        """idx (E, B, T) token ids -> logits (E, B, T, V) [, hidden (L+1, E, B, T, d)]."""
        cfg = self.config
        E, B, T = idx.shape
        if E != len(self.run_offset):     # = n_runs (represent.per_example_grads passes more as a buffer)
            raise ValueError(f"model error: idx has {E} runs on axis 0, the model has n_runs={len(self.run_offset)} "
                             f"(use idx.expand to feed one batch to every run)")
        if T > cfg.block_size:
            raise ValueError(f"model error: sequence length {T} > block_size {cfg.block_size}")
        x = F.embedding(idx + self.run_offset, self.wte.reshape(-1, cfg.n_embd))  # (E, B, T, d)
        if cfg.block == 'gemma2':
            x = x * cfg.n_embd ** 0.5    # Python float, as HF's float32 normalizer in float32
        x = x.reshape(E, B * T, cfg.n_embd)
        hidden = [x]
        block = pythia_block if cfg.block == 'pythia' else gemma2_block
        for p in self.h:
            x = block(self, p, x, B, T)
            hidden.append(x)
        if cfg.block == 'pythia':
            x = layer_norm(x, self.ln_f_w, self.ln_f_b, cfg.norm_eps)
            head = self.lm_head
        else:
            x = rms_norm(x, self.ln_f_w, cfg.norm_eps)
            head = self.wte
        logits = softcap(torch.bmm(x, head.transpose(1, 2)), cfg.final_softcap)  # (E, B*T, V)
        logits = logits.view(E, B, T, cfg.vocab_size)
        if return_hidden:
            return logits, torch.stack(hidden).view(cfg.n_layer + 1, E, B, T, cfg.n_embd)
        return logits


def _unwrap(model):
    return getattr(model, '_orig_mod', model)  # torch.compile wraps the module


def n_params(model):
    """Number of parameters of one run."""
    return sum(p[0].numel() for p in _unwrap(model).parameters())


def summary(model):
    """One line a person wants to read: block, shape, parameters per run, number of runs."""
    cfg = _unwrap(model).config
    return (f"{cfg.block}: {cfg.n_layer} layers, {cfg.n_head} heads, d={cfg.n_embd}, vocab {cfg.vocab_size}, "
            f"{n_params(model) / 1e6:.2f}M parameters per run x {cfg.n_runs} runs")


def decays(name, p):
    """Weight decay rule: matrices and embeddings (ndim 3 with the run axis) yes; norms and biases no."""
    return p.dim() >= 3


def param_groups(model, weight_decay):
    """AdamW parameter groups: [{decayed params, weight_decay}, {norms and biases, 0.0}]."""
    named = list(_unwrap(model).named_parameters())
    return [{'params': [p for n, p in named if decays(n, p)], 'weight_decay': weight_decay},
            {'params': [p for n, p in named if not decays(n, p)], 'weight_decay': 0.0}]


def model_args(model):
    """GPTConfig fields of one run (n_runs=1), as saved in checkpoints."""
    return dict(asdict(_unwrap(model).config), n_runs=1)


def run_state_dict(model, r):
    """Run r's weights without the run axis, cloned to the CPU."""
    return {n: p[r].detach().cpu().clone() for n, p in _unwrap(model).named_parameters()}


@torch.no_grad()
def load_run(model, r, state_dict):
    """Copy one run's weights (no run axis) into slot r of model."""
    params = dict(_unwrap(model).named_parameters())
    missing, extra = sorted(set(params) - set(state_dict)), sorted(set(state_dict) - set(params))
    if missing or extra:
        raise ValueError(f"model error: state dict does not match the model (missing {missing[:3]}, "
                         f"unexpected {extra[:3]})")
    for n, p in params.items():
        if tuple(state_dict[n].shape) != tuple(p.shape[1:]):
            raise ValueError(f"model error: {n} has shape {tuple(state_dict[n].shape)}, "
                             f"expected {tuple(p.shape[1:])}")
        p[r].copy_(state_dict[n])
