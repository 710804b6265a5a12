"""
Export checkpoints to the Hugging Face format, so that transformers (and the interpretability
tools built on it) load them with no code from this repository.

    python export_hf.py out/<exp>/<run>/ckpt_<iter>.pt hf/<name>   # one checkpoint
    python export_hf.py out/<exp> hf/<exp> --all                   # the last checkpoint of every run -> hf/<exp>/<run>/

A pythia checkpoint becomes a GPTNeoXForCausalLM, a gemma2 one a Gemma2ForCausalLM, with the
same logits as model.py (tests/test_export_hf.py). Each output directory holds config.json,
generation_config.json, model.safetensors (float32), tokenizer.json, tokenizer_config.json and
rosetta.json (the source checkpoint, its iter and the run's config). An output directory that holds
files is refused unless --overwrite=True, which replaces it whole (written beside it, then renamed
into place: never a mix of an old and a new export).

The tokenizer reproduces data_gen's token ids: tok(example['text']).input_ids == example['tokens']
(BOS and EOS included; for a prompt, drop the trailing EOS). word: whitespace split; char_low /
char_cased: every character, space included, is one token. The model has no row for an unknown
token, so a piece outside the vocabulary becomes <pad> (id 0, tok.unk_token_id), which no dataset
text produces: look for 0 in the ids of free text (data_gen.encode raises instead).
"""
import errno
import glob
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import asdict


from configurator import cli, config_keys, configure
from checkpoints import load_checkpoint

# -----------------------------------------------------------------------------
ckpt = ''          # out/<exp>/<run>/ckpt_<iter>.pt (with all_runs: out/<exp>); or the first argument
out_dir = ''       # directory to write (with all_runs: one subdirectory per run); or the second argument
all_runs = False   # export the last checkpoint of every run of the experiment `ckpt` into out_dir/<run>/
tokenizer = ''     # word | char_low | char_cased; '' = the run's config.json, else what the vocabulary shows
overwrite = False  # replace an output directory that holds files (the whole directory: nothing old is left in it)
# -----------------------------------------------------------------------------
DEFAULTS = config_keys(globals())
SPECIALS = ['<pad>', '<bos>', '<eos>']   # data_gen's first three tokens: pad 0, bos 1, eos 2
TOKENIZERS = ('word', 'char_low', 'char_cased')
CHOICES = {'tokenizer': ('',) + TOKENIZERS}


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON ({e})")


# ----------------------------------------------------------------------------- weights and config
# ours: linear weights (in, out); HF: (out, in)

def neox_state(w, c):
    """Our pythia weights -> GPTNeoXForCausalLM state dict. Our fused qkv output axis is
    [q | k | v] = (3, nh, hs); GPT-NeoX's is (nh, 3, hs)."""
    nh, d = c.n_head, c.n_embd
    hs = d // nh
    s = {'gpt_neox.embed_in.weight': w['wte'], 'lm_head.weight': w['lm_head'],
         'gpt_neox.final_layer_norm.weight': w['ln_f_w'], 'gpt_neox.final_layer_norm.bias': w['ln_f_b']}
    for i in range(c.n_layer):
        p, h = f'gpt_neox.layers.{i}.', f'h.{i}.'
        s.update({
            p + 'input_layernorm.weight': w[h + 'ln1_w'], p + 'input_layernorm.bias': w[h + 'ln1_b'],
            p + 'post_attention_layernorm.weight': w[h + 'ln2_w'],
            p + 'post_attention_layernorm.bias': w[h + 'ln2_b'],
            p + 'attention.query_key_value.weight':      # (3d, d): output rows regrouped per head
                w[h + 'w_qkv'].T.reshape(3, nh, hs, d).transpose(0, 1).reshape(3 * d, d),
            p + 'attention.query_key_value.bias': w[h + 'b_qkv'].reshape(3, nh, hs).transpose(0, 1).reshape(3 * d),
            p + 'attention.dense.weight': w[h + 'w_o'].T, p + 'attention.dense.bias': w[h + 'b_o'],
            p + 'mlp.dense_h_to_4h.weight': w[h + 'w_fc'].T, p + 'mlp.dense_h_to_4h.bias': w[h + 'b_fc'],
            p + 'mlp.dense_4h_to_h.weight': w[h + 'w_proj'].T, p + 'mlp.dense_4h_to_h.bias': w[h + 'b_proj'],
        })
    return s


def gemma2_state(w, c):
    """Our gemma2 weights -> Gemma2ForCausalLM state dict (lm_head tied to the embedding)."""
    s = {'model.embed_tokens.weight': w['wte'], 'lm_head.weight': w['wte'], 'model.norm.weight': w['ln_f_w']}
    for i in range(c.n_layer):
        p, h = f'model.layers.{i}.', f'h.{i}.'
        q, k, v = w[h + 'w_qkv'].T.chunk(3, 0)          # each (nh*hs, d)
        gate, up = w[h + 'w_fc'].T.chunk(2, 0)          # w_fc is laid out [gate | up]
        s.update({
            p + 'input_layernorm.weight': w[h + 'ln1_w'], p + 'post_attention_layernorm.weight': w[h + 'ln1_post_w'],
            p + 'pre_feedforward_layernorm.weight': w[h + 'ln2_w'],
            p + 'post_feedforward_layernorm.weight': w[h + 'ln2_post_w'],
            p + 'self_attn.q_proj.weight': q, p + 'self_attn.k_proj.weight': k, p + 'self_attn.v_proj.weight': v,
            p + 'self_attn.o_proj.weight': w[h + 'w_o'].T,
            p + 'mlp.gate_proj.weight': gate, p + 'mlp.up_proj.weight': up,
            p + 'mlp.down_proj.weight': w[h + 'w_proj'].T,
        })
    return s


def hf_config(c):
    """The transformers config of the same network, or a ValueError for a setting it cannot express."""
    import transformers   # here, not at the top: a bad argument is reported without the slow import
    hs = c.n_embd // c.n_head
    common = dict(pad_token_id=0, bos_token_id=1, eos_token_id=2, vocab_size=c.vocab_size, hidden_size=c.n_embd,
                  num_hidden_layers=c.n_layer, num_attention_heads=c.n_head,
                  intermediate_size=int(c.mlp_ratio * c.n_embd),
                  max_position_embeddings=c.block_size)   # our RoPE tables end at block_size: longer is untrained
    if c.block == 'pythia':
        if c.attn_softcap or c.final_softcap or c.query_pre_attn_scalar != hs:
            raise ValueError("GPT-NeoX has no soft-caps and scales attention by head_dim ** -0.5: this pythia "
                             f"checkpoint sets attn_softcap={c.attn_softcap}, final_softcap={c.final_softcap}, "
                             f"query_pre_attn_scalar={c.query_pre_attn_scalar}")
        return transformers.GPTNeoXConfig(
            hidden_act='gelu', rotary_pct=c.rotary_pct, rotary_emb_base=c.rope_base, layer_norm_eps=c.norm_eps,
            use_parallel_residual=True, attention_bias=True, tie_word_embeddings=False, **common)
    if c.rotary_pct != 1.0:
        raise ValueError(f"Gemma-2 rotates every head dim: this gemma2 checkpoint has rotary_pct={c.rotary_pct}")
    if c.query_pre_attn_scalar != int(c.query_pre_attn_scalar):
        raise ValueError(f"Gemma2Config needs an integer query_pre_attn_scalar, not {c.query_pre_attn_scalar}")
    return transformers.Gemma2Config(
        num_key_value_heads=c.n_head, head_dim=hs, query_pre_attn_scalar=int(c.query_pre_attn_scalar),
        rms_norm_eps=c.norm_eps, rope_theta=c.rope_base, hidden_activation='gelu_pytorch_tanh',
        attn_logit_softcapping=c.attn_softcap or None, final_logit_softcapping=c.final_softcap or None,  # 0 = off
        # ours attends globally: no sliding-window layers (and a window of block_size for older
        # transformers, which ignore layer_types and alternate sliding and global layers)
        layer_types=['full_attention'] * c.n_layer, sliding_window=c.block_size,
        attention_bias=False, tie_word_embeddings=True, **common)


# ----------------------------------------------------------------------------- tokenizer

def run_config(ckpt_path):
    """The run's config.json beside the checkpoint ({} if there is none)."""
    path = os.path.join(os.path.dirname(os.path.abspath(ckpt_path)), 'config.json')
    return read_json(path) if os.path.isfile(path) else {}


def dataset_meta(rc):
    """data_gen's meta.json of the run's dataset, or {} (datasets are regenerated, so it may be gone)."""
    path = os.path.join(rc.get('dataset_path', ''), 'meta.json')
    return read_json(path) if rc.get('dataset_path') and os.path.isfile(path) else {}


def vocab_and_kind(ckpt_path, ck, override=''):
    """(token list, tokenizer kind) of a checkpoint: vocab from the checkpoint (else the dataset's
    meta.json); kind from `override`, the run's config.json, meta.json, else the vocabulary."""
    rc = run_config(ckpt_path)
    meta = dataset_meta(rc) if ('vocab' not in ck or not (override or rc.get('tokenizer'))) else {}
    vocab = ck.get('vocab') or meta.get('vocab')
    if not vocab:
        raise ValueError(f"{ckpt_path}: no vocabulary in the checkpoint, nor a dataset meta.json "
                         "via the run's config.json")
    if list(vocab[:3]) != SPECIALS or len(vocab) != len(set(vocab)):
        raise ValueError(f"{ckpt_path}: the vocabulary does not start with {SPECIALS} or has duplicates")
    # a word vocabulary comes from str.split(), so it never holds ' '; a char vocabulary always does
    char = ' ' in vocab
    kind = override or rc.get('tokenizer') or meta.get('config', {}).get('tokenizer') or ('char' if char else 'word')
    if kind not in TOKENIZERS + ('char',):
        raise ValueError(f"tokenizer={kind!r} is not one of {', '.join(TOKENIZERS)}")
    if char != kind.startswith('char') or char and any(len(t) != 1 for t in vocab[3:]):
        raise ValueError(f"tokenizer={kind!r} does not fit the vocabulary of {ckpt_path} "
                         f"({'single characters and a space' if char else 'words'})")
    return list(vocab), kind


def make_tokenizer(vocab, kind, block_size):
    """A PreTrainedTokenizerFast with data_gen's ids: BOS + pieces + EOS."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast
    # the model has no row for an unknown token: an unknown piece becomes <pad> (id 0), which no
    # dataset text produces; raising instead breaks tools that probe the tokenizer with 'a'
    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(vocab)}, unk_token='<pad>'))
    if kind == 'word':
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()          # as str.split(); decode joins with ' '
    else:
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(r'[\s\S]'), behavior='isolated')   # each character
        tok.decoder = decoders.Fuse()                                  # decode concatenates
    tok.add_special_tokens(SPECIALS)   # '<bos>' written in a text is the BOS token, not five characters
    tok.post_processor = processors.TemplateProcessing(
        single='<bos> $A <eos>', pair='<bos> $A <eos> $B <eos>', special_tokens=[('<bos>', 1), ('<eos>', 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token='<pad>', unk_token='<pad>', bos_token='<bos>',
                                   eos_token='<eos>', model_max_length=block_size, clean_up_tokenization_spaces=False)


# ----------------------------------------------------------------------------- export

def edit_json(path, **kv):
    d = read_json(path)
    d.update(kv)
    with open(path, 'w') as f:
        json.dump(d, f, indent=2)
        f.write('\n')


def check_out(out, overwrite):
    """An output directory must be new or empty, unless overwrite: never a mix of two exports."""
    if os.path.isfile(out):
        raise ValueError(f"out_dir {out} is a file")
    held = os.listdir(out) if os.path.isdir(out) else []
    if held and not overwrite:
        raise ValueError(f"out_dir {out} is not empty ({len(held)} entries, e.g. {sorted(held)[0]}): choose a new "
                         "directory, or replace it whole with --overwrite=True")


def write_whole(out, write):
    """write(tmp) fills a temporary directory beside `out`, which then takes out's place by renames:
    `out` holds the old export or the new one, never a mix (a crash leaves a hidden .tmp folder)."""
    parent = os.path.dirname(os.path.abspath(out))
    tmp = old = None
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f'.{os.path.basename(out)}.tmp', dir=parent)
        write(tmp)
        os.chmod(tmp, 0o755)
        if os.path.isdir(out):
            old = tempfile.mkdtemp(prefix=f'.{os.path.basename(out)}.old', dir=parent)
            os.replace(out, os.path.join(old, 'd'))
        os.replace(tmp, out)
        tmp = None
    except Exception as e:                      # safetensors reports a full disk in its own error type
        full = getattr(e, 'errno', None) in (errno.ENOSPC, errno.EDQUOT) or 'No space left' in str(e)
        if not (full or isinstance(e, OSError)):
            raise
        raise OSError(f"export_hf error: cannot write {out}: "
                      f"{'no space left on device' if full else e.strerror or e}") from None
    finally:
        for d in (tmp, old):
            if d:
                shutil.rmtree(d, ignore_errors=True)


def export(ckpt_path, out, tokenizer='', overwrite=False):
    """Write checkpoint `ckpt_path` as a Hugging Face model + tokenizer directory `out` (refused if
    `out` holds files, unless overwrite: then replaced whole); returns out."""
    check_out(out, overwrite)
    model, ck = load_checkpoint(ckpt_path)                     # checked: a checkpoint of ours, its shapes
    c = model.config
    vocab, kind = vocab_and_kind(ckpt_path, ck, tokenizer)
    if len(vocab) != c.vocab_size:
        raise ValueError(f"{ckpt_path}: vocabulary of {len(vocab)} tokens for vocab_size={c.vocab_size}")
    hc = hf_config(c)
    import transformers
    weights = {k: v.float() for k, v in ck['model'].items()}   # model.py computes in float32
    state = neox_state(weights, c) if c.block == 'pythia' else gemma2_state(weights, c)
    hf = transformers.AutoModelForCausalLM.from_config(hc)
    hf.load_state_dict({k: v.contiguous() for k, v in state.items()}, strict=True)
    transformers.utils.logging.disable_progress_bar()          # no bar per file written

    def write(d):
        hf.save_pretrained(d)
        # older transformers (4.x, what some tools pin) read RoPE from these keys, 5.x from rope_parameters
        legacy = dict(rotary_pct=c.rotary_pct, rotary_emb_base=c.rope_base) if c.block == 'pythia' \
            else dict(rope_theta=c.rope_base)
        edit_json(os.path.join(d, 'config.json'), **legacy)
        make_tokenizer(vocab, kind, c.block_size).save_pretrained(d)
        # the class name every transformers version knows (5.x alone knows 'TokenizersBackend')
        edit_json(os.path.join(d, 'tokenizer_config.json'), tokenizer_class='PreTrainedTokenizerFast')
        with open(os.path.join(d, 'rosetta.json'), 'w') as f:
            json.dump({'checkpoint': os.path.abspath(ckpt_path), 'iter': ck.get('iter'), 'tokenizer': kind,
                       'model_args': asdict(c), 'run_config': run_config(ckpt_path)}, f, indent=1, default=str)
    write_whole(out, write)
    print(f"{ckpt_path} -> {out} ({type(hf).__name__}, {c.n_layer} layers, d={c.n_embd}, "
          f"vocab {c.vocab_size}, {kind} tokenizer)")
    return out


def last_ckpt(run_dir):
    """The run's ckpt_<iter>.pt with the largest iter, or None."""
    its = [(int(m.group(1)), p) for p in glob.glob(os.path.join(run_dir, 'ckpt_*.pt'))
           if (m := re.fullmatch(r'ckpt_(\d+)\.pt', os.path.basename(p)))]
    return max(its)[1] if its else None


def export_all(exp_dir, out, tokenizer='', overwrite=False):
    """The last checkpoint of every run of experiment exp_dir -> out/<run>/; returns the directories.
    Every out/<run> is checked before the first is written."""
    if not os.path.isdir(exp_dir):
        raise ValueError(f"all_runs=True needs an experiment directory (out/<exp>), not {exp_dir}")
    runs = sorted(r for r in os.listdir(exp_dir) if last_ckpt(os.path.join(exp_dir, r)))
    if not runs:
        raise ValueError(f"no run with a ckpt_<iter>.pt under {exp_dir}")
    for r in runs:
        check_out(os.path.join(out, r), overwrite)
    return [export(last_ckpt(os.path.join(exp_dir, r)), os.path.join(out, r), tokenizer, overwrite) for r in runs]


def parse_args(argv):
    """`<ckpt> <out_dir> [--all] [--key=value ...]`: the first two arguments that are not
    --key=value; a bare --all is --all_runs=True."""
    if '--help' in argv or '-h' in argv:
        print(__doc__.strip() + '\n')
        configure(DEFAULTS, ['--help'], choices=CHOICES, sources=[__file__])
    argv = ['--all_runs=True' if a == '--all' else a for a in argv]
    pos = [a for a in argv if not a.startswith('--')]
    if len(pos) > 2:
        raise ValueError(f"unexpected argument {pos[2]!r} (usage: export_hf.py <ckpt> <out_dir> [--key=value ...])")
    flags = [f'--{k}={v}' for k, v in zip(('ckpt', 'out_dir'), pos)] + [a for a in argv if a.startswith('--')]
    cfg = configure(DEFAULTS, flags, choices=CHOICES)
    if not cfg['ckpt'] or not cfg['out_dir']:
        raise ValueError("need a checkpoint and an output directory (usage: python export_hf.py "
                         "<ckpt_<iter>.pt | out/<exp> --all_runs=True> <out_dir> [--tokenizer=...]; --help for more)")
    return cfg


def main(argv):
    cfg = parse_args(argv)
    if cfg['all_runs']:
        return export_all(cfg['ckpt'], cfg['out_dir'], cfg['tokenizer'], cfg['overwrite'])
    if os.path.isdir(cfg['ckpt']):
        raise ValueError(f"{cfg['ckpt']} is a directory: give a ckpt_<iter>.pt, or add --all_runs=True to "
                         "export the last checkpoint of every run of an experiment")
    return export(cfg['ckpt'], cfg['out_dir'], cfg['tokenizer'], cfg['overwrite'])


if __name__ == '__main__':
    def run():
        try:
            return main(sys.argv[1:])
        except ValueError as e:                  # name the script, as the other one-line errors do
            raise ValueError(f"export_hf error: {e}") from None
    cli(run)
