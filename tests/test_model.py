"""model.py: equivalence with Hugging Face GPT-NeoX / Gemma-2, the run axis, checkpoints, torch.func."""

import pytest
import torch
import torch.nn.functional as F

import checkpoints
import model as M

V, T, B = 50, 12, 3   # tiny: vocab, sequence length, batch


def tiny(block, **kw):
    args = dict(block=block, n_layer=2, n_head=4, n_embd=32, vocab_size=V, block_size=16)
    return M.GPTConfig(**dict(args, **kw))


def randomize(hf, seed=0):
    """Random weights everywhere (norms and biases too), large enough that every path matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in hf.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if 'norm' in n and n.endswith('weight'):
                p.copy_((0.0 if 'gemma' in type(hf).__name__.lower() else 1.0) + 0.1 * noise)
            elif p.dim() == 1:
                p.copy_(0.1 * noise)
            else:
                p.copy_(0.3 * noise)


# ------------------------------------------------------------------------------------------------
# Hugging Face -> ours weight mapping (our linear weights are (in, out); HF's are (out, in))

def neox_to_ours(hf, cfg):
    """GPTNeoXForCausalLM state -> one run's state dict. HF's fused qkv is laid out (nh, 3, hs) on
    the output axis; ours is (3, nh, hs), i.e. [q | k | v]."""
    s = {k: v.detach().clone() for k, v in hf.state_dict().items()}
    nh, d = cfg.n_head, cfg.n_embd
    hs = d // nh
    out = {'wte': s['gpt_neox.embed_in.weight'], 'lm_head': s['lm_head.weight'],
           'ln_f_w': s['gpt_neox.final_layer_norm.weight'], 'ln_f_b': s['gpt_neox.final_layer_norm.bias']}
    for i in range(cfg.n_layer):
        p = f'gpt_neox.layers.{i}.'
        w = s[p + 'attention.query_key_value.weight'].view(nh, 3, hs, d).transpose(0, 1).reshape(3 * d, d)
        b = s[p + 'attention.query_key_value.bias'].view(nh, 3, hs).transpose(0, 1).reshape(3 * d)
        out.update({
            f'h.{i}.ln1_w': s[p + 'input_layernorm.weight'], f'h.{i}.ln1_b': s[p + 'input_layernorm.bias'],
            f'h.{i}.ln2_w': s[p + 'post_attention_layernorm.weight'],
            f'h.{i}.ln2_b': s[p + 'post_attention_layernorm.bias'],
            f'h.{i}.w_qkv': w.T, f'h.{i}.b_qkv': b,
            f'h.{i}.w_o': s[p + 'attention.dense.weight'].T, f'h.{i}.b_o': s[p + 'attention.dense.bias'],
            f'h.{i}.w_fc': s[p + 'mlp.dense_h_to_4h.weight'].T, f'h.{i}.b_fc': s[p + 'mlp.dense_h_to_4h.bias'],
            f'h.{i}.w_proj': s[p + 'mlp.dense_4h_to_h.weight'].T, f'h.{i}.b_proj': s[p + 'mlp.dense_4h_to_h.bias'],
        })
    return {k: v.contiguous() for k, v in out.items()}


def gemma2_to_ours(hf, cfg):
    """Gemma2ForCausalLM state -> one run's state dict (lm_head is tied to the embedding)."""
    s = {k: v.detach().clone() for k, v in hf.state_dict().items()}
    out = {'wte': s['model.embed_tokens.weight'], 'ln_f_w': s['model.norm.weight']}
    for i in range(cfg.n_layer):
        p = f'model.layers.{i}.'
        qkv = torch.cat([s[p + f'self_attn.{x}_proj.weight'] for x in 'qkv'], 0)
        fc = torch.cat([s[p + 'mlp.gate_proj.weight'], s[p + 'mlp.up_proj.weight']], 0)
        out.update({
            f'h.{i}.ln1_w': s[p + 'input_layernorm.weight'], f'h.{i}.ln1_post_w': s[p + 'post_attention_layernorm.weight'],
            f'h.{i}.ln2_w': s[p + 'pre_feedforward_layernorm.weight'],
            f'h.{i}.ln2_post_w': s[p + 'post_feedforward_layernorm.weight'],
            f'h.{i}.w_qkv': qkv.T, f'h.{i}.w_o': s[p + 'self_attn.o_proj.weight'].T,
            f'h.{i}.w_fc': fc.T, f'h.{i}.w_proj': s[p + 'mlp.down_proj.weight'].T,
        })
    return {k: v.contiguous() for k, v in out.items()}


def hf_pair(block, **kw):
    """(HF model with random weights, our config) of the same tiny shape."""
    transformers = pytest.importorskip('transformers')
    if block == 'pythia':
        cfg = tiny('pythia', n_head=2, **kw)   # head dim 16 -> 4 rotary dims at 25%
        hc = transformers.GPTNeoXConfig(
            vocab_size=V, hidden_size=cfg.n_embd, num_hidden_layers=cfg.n_layer, num_attention_heads=cfg.n_head,
            intermediate_size=4 * cfg.n_embd, hidden_act='gelu', max_position_embeddings=cfg.block_size,
            rotary_pct=cfg.rotary_pct, rotary_emb_base=cfg.rope_base, layer_norm_eps=cfg.norm_eps,
            use_parallel_residual=True, tie_word_embeddings=False, attn_implementation='eager')
        hf = transformers.GPTNeoXForCausalLM(hc)
    else:
        cfg = tiny('gemma2', mlp_ratio=2.0, **kw)
        hc = transformers.Gemma2Config(
            vocab_size=V, hidden_size=cfg.n_embd, intermediate_size=2 * cfg.n_embd, num_hidden_layers=cfg.n_layer,
            num_attention_heads=cfg.n_head, num_key_value_heads=cfg.n_head, head_dim=cfg.n_embd // cfg.n_head,
            query_pre_attn_scalar=int(cfg.query_pre_attn_scalar), max_position_embeddings=cfg.block_size,
            rms_norm_eps=cfg.norm_eps, attn_logit_softcapping=cfg.attn_softcap,
            final_logit_softcapping=cfg.final_softcap, rope_parameters={'rope_type': 'default', 'rope_theta': cfg.rope_base},
            tie_word_embeddings=True, attn_implementation='eager')
        hf = transformers.Gemma2ForCausalLM(hc)
        assert hf.lm_head.weight is hf.model.embed_tokens.weight
    randomize(hf)
    return hf.eval(), cfg


@pytest.mark.parametrize('block,kw', [
    ('pythia', {}),
    ('gemma2', {}),
    # small caps and a non-default query scale, so the soft-caps and the scaling really act
    ('gemma2', dict(attn_softcap=2.0, final_softcap=1.5, query_pre_attn_scalar=20.0)),
])
def test_matches_hugging_face(block, kw):
    hf, cfg = hf_pair(block, **kw)
    # our run 1 of 2 holds HF's weights; run 0 keeps its own init
    ours = M.GPT(M.GPTConfig(**dict(M.model_args(M.GPT(cfg)), n_runs=2))).eval()
    M.load_run(ours, 1, neox_to_ours(hf, cfg) if block == 'pythia' else gemma2_to_ours(hf, cfg))
    idx = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = hf(idx, output_hidden_states=True)
        logits, hidden = ours(torch.stack([idx, idx]), return_hidden=True)
    diff = (logits[1] - ref.logits).abs().max().item()
    print(f"\n{block} {kw}: max |logit diff| vs HF = {diff:.2e} (logit scale {ref.logits.abs().max():.1f})")
    assert diff < 1e-4
    assert (logits[0] - ref.logits).abs().max() > 1e-2      # the other run is a different model
    # HF's hidden_states: embedding output, then each layer's output, the last one after the final norm
    assert len(ref.hidden_states) == cfg.n_layer + 1
    for l in range(cfg.n_layer):
        assert (hidden[l, 1] - ref.hidden_states[l]).abs().max() < 1e-4, l
    last = hidden[-1, 1].reshape(1, B * T, -1)
    if block == 'pythia':
        normed = M.layer_norm(last, ours.ln_f_w[1:], ours.ln_f_b[1:], cfg.norm_eps)
    else:
        normed = M.rms_norm(last, ours.ln_f_w[1:], cfg.norm_eps)
    assert (normed.view(B, T, -1) - ref.hidden_states[-1]).abs().max() < 1e-4


@pytest.mark.parametrize('block', ['pythia', 'gemma2'])
def test_run_sliced_equals_run_alone(block):
    big = M.GPT(tiny(block, n_runs=3), seeds=[0, 1, 2]).eval()
    alone = M.GPT(tiny(block, n_runs=1), seeds=[9]).eval()
    M.load_run(alone, 0, M.run_state_dict(big, 1))
    idx = torch.randint(0, V, (3, B, T), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        lb, hb = big(idx, return_hidden=True)
        la, ha = alone(idx[1:2], return_hidden=True)
    assert (lb[1] - la[0]).abs().max() < 1e-5
    assert (hb[:, 1] - ha[:, 0]).abs().max() < 1e-5
    assert (lb[0] - lb[2]).abs().max() > 1e-3   # runs differ


@pytest.mark.parametrize('block', ['pythia', 'gemma2'])
def test_init_depends_only_on_own_seed(block):
    a = M.run_state_dict(M.GPT(tiny(block, n_runs=3), seeds=[5, 6, 7]), 1)
    b = M.run_state_dict(M.GPT(tiny(block, n_runs=1), seeds=[6]), 0)
    c = M.run_state_dict(M.GPT(tiny(block, n_runs=1), seeds=[5]), 0)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a['wte'], c['wte'])
    # init rule: Gemma norm weights 0 (scaled by 1 + w), LayerNorm weights 1, residual projections smaller
    assert torch.all(a['ln_f_w'] == (1.0 if block == 'pythia' else 0.0))
    assert a['h.0.w_proj'].std() < a['h.0.w_fc'].std() * 0.8


def test_sdpa_and_explicit_attention_agree():
    m = M.GPT(tiny('pythia', n_runs=2)).eval()
    idx = torch.randint(0, V, (2, B, T))
    with torch.no_grad():
        a = m(idx)
        m.use_sdpa = False
        b = m(idx)
    assert (a - b).abs().max() < 1e-5


@pytest.mark.parametrize('block', ['pythia', 'gemma2'])
def test_cpu_bfloat16_writes_attention_out(block, monkeypatch):
    """Under bf16 autocast on a CPU the attention is written out (SDPA's CPU bf16 backward is slow),
    and the logits are float32's within bf16 rounding; in float32 SDPA stays (same math as before)."""
    m = M.GPT(tiny(block, n_runs=2)).eval()
    idx = torch.randint(0, V, (2, B, T), generator=torch.Generator().manual_seed(4))
    calls = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(F, 'scaled_dot_product_attention', lambda *a, **k: calls.append(1) or sdpa(*a, **k))
    with torch.no_grad():
        ref = m(idx)
        n_fp32 = len(calls)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = m(idx)
    assert n_fp32 == (2 if block == 'pythia' else 0) and len(calls) == n_fp32   # gemma2: soft-capped, always written out
    assert out.dtype == torch.bfloat16 and (out.float() - ref).abs().max() < 0.03 * ref.abs().max()


def test_return_hidden_shape_and_causality():
    m = M.GPT(tiny('gemma2', n_runs=2)).eval()
    idx = torch.randint(0, V, (2, B, T))
    logits, hidden = m(idx, return_hidden=True)
    assert logits.shape == (2, B, T, V) and hidden.shape == (3, 2, B, T, 32)
    # layer-0 entry is the embedding after Gemma's sqrt(d) scaling
    assert torch.allclose(hidden[0, 0], m.wte[0][idx[0]] * 32 ** 0.5)
    idx2 = idx.clone()
    idx2[:, :, -1] = (idx2[:, :, -1] + 1) % V  # changing the last token cannot change earlier logits
    with torch.no_grad():
        assert torch.equal(m(idx)[:, :, :-1], m(idx2)[:, :, :-1])


def test_checkpoint_round_trip_and_errors(tmp_path):
    m = M.GPT(tiny('pythia', n_runs=2)).eval()
    path = tmp_path / 'ckpt_10.pt'
    torch.save({'model': M.run_state_dict(m, 1), 'model_args': M.model_args(m), 'iter': 10}, path)
    alone, ckpt = checkpoints.load_checkpoint(str(path))
    assert alone.config.n_runs == 1 and ckpt['iter'] == 10 and not alone.training
    idx = torch.randint(0, V, (1, B, T))
    with torch.no_grad():
        assert torch.allclose(alone(idx)[0], m(idx.expand(2, B, T))[1], atol=1e-6)

    with pytest.raises(ValueError, match='not found'):
        checkpoints.load_checkpoint(str(tmp_path / 'missing.pt'))
    (tmp_path / 'junk.pt').write_bytes(b'this is not a checkpoint')
    with pytest.raises(ValueError, match='not a checkpoint'):
        checkpoints.load_checkpoint(str(tmp_path / 'junk.pt'))
    torch.save([1, 2, 3], tmp_path / 'list.pt')
    with pytest.raises(ValueError, match='not a checkpoint'):
        checkpoints.load_checkpoint(str(tmp_path / 'list.pt'))
    torch.save({'model': {}, 'model_args': dict(M.model_args(m), block='foo')}, tmp_path / 'foo.pt')
    with pytest.raises(ValueError, match='block'):
        checkpoints.load_checkpoint(str(tmp_path / 'foo.pt'))
    with pytest.raises(ValueError, match='block'):
        M.GPTConfig(block='foo')
    with pytest.raises(ValueError, match='n_head'):
        M.GPTConfig(n_embd=30, n_head=4)
    bad = M.run_state_dict(m, 0)
    del bad['wte']
    with pytest.raises(ValueError, match='wte'):
        M.load_run(m, 0, bad)


@pytest.mark.parametrize('block', ['pythia', 'gemma2'])
def test_per_example_grads_with_torch_func(block):
    """The analysis computes per-example gradients with functional_call + vmap(grad)."""
    from torch.func import functional_call, grad, vmap
    m = M.GPT(tiny(block)).eval()
    m.use_sdpa = False   # explicit attention: vmap has no batching rule for SDPA
    params = {k: v.detach() for k, v in m.named_parameters()}
    X = torch.randint(0, V, (4, T), generator=torch.Generator().manual_seed(3))

    def loss(p, x):  # x (T,): next-token loss of one example
        logits = functional_call(m, p, (x[None, None],))[0, 0]   # (T, V)
        return F.cross_entropy(logits[:-1], x[1:])

    per_ex = vmap(grad(loss), in_dims=(None, 0))(params, X)
    m.zero_grad()
    loss(dict(m.named_parameters()), X[2]).backward()
    for k, p in m.named_parameters():
        assert per_ex[k].shape == (4, *p.shape)
        assert torch.allclose(per_ex[k][2], p.grad, atol=1e-6, rtol=1e-4), k


def test_param_groups_weight_decay_rule():
    m = M.GPT(tiny('pythia', n_runs=2))
    decay, no_decay = M.param_groups(m, 0.1)
    assert decay['weight_decay'] == 0.1 and no_decay['weight_decay'] == 0.0
    names = {id(p): n for n, p in m.named_parameters()}
    d = {names[id(p)] for p in decay['params']}
    nd = {names[id(p)] for p in no_decay['params']}
    assert d | nd == set(names.values()) and not d & nd
    assert {'wte', 'lm_head', 'h.0.w_qkv', 'h.1.w_proj'} <= d
    assert {'ln_f_w', 'ln_f_b', 'h.0.b_qkv', 'h.0.ln1_w'} <= nd


@pytest.mark.parametrize('block', ['pythia', 'gemma2'])
def test_default_shape_is_about_two_million_params(block):
    m = M.GPT(M.GPTConfig(block=block, vocab_size=700, block_size=32, n_runs=2))
    print('\n' + M.summary(m))
    assert (m.config.n_layer, m.config.n_embd, m.config.n_head) == (6, 128, 4)
    # one run's parameters, counted by hand from the shapes (d = 128, V = 700, 6 layers)
    d, V, L = 128, 700, 6
    if block == 'pythia':   # qkv, out, fc, proj (+ biases), 2 LayerNorms per layer; wte, lm_head, final norm
        per_layer = 3 * d * d + 3 * d + d * d + d + 4 * d * d + 4 * d + 4 * d * d + d + 4 * d
        total = L * per_layer + 2 * V * d + 2 * d
    else:                   # qkv, out, GeGLU fc (2 x 4d), proj, 4 RMSNorms per layer; tied wte, final norm
        per_layer = 3 * d * d + d * d + 8 * d * d + 4 * d * d + 4 * d
        total = L * per_layer + V * d + d
    assert M.n_params(m) == total and 1e6 < total < 2e6
    assert m.wte.shape == (2, 700, 128)
