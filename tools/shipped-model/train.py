#!/usr/bin/env python3
"""Train the small BitNet b1.58 model shipped in models/ (see models/README.md).

Architecture: microsoft/bitnet-b1.58-2B-4T as HF `BitNetForCausalLM` computes it (FORMATS.md section 2):
pre-norm RMSNorm blocks, Q/K/V/O and gate/up/down BitLinears, attn_sub_norm before o_proj, ffn_sub_norm
before down_proj, ReLU^2 gating relu(gate)^2 * up, NEOX (rotate-half) RoPE, GQA, tied embeddings.
BitLinear while training: weights ternarised per tensor by absmean (s = mean|W|, W_q = clamp(round(W/s),-1,1)*s),
activations per token absmax int8 (x_q = clamp(round(x*127/max|x|),-128,127)*max|x|/127), both through a
straight-through estimator. Latent weights are f32.

Subcommands (run in this order; corpus from prepare_corpus.py):
  tokenize  train the byte-level BPE tokenizer on train.txt and encode train/held-out text to .npy ids
  bench     time a few training steps of a configuration (tokens/s)
  train     train (time-budgeted cosine schedule), keep the checkpoint with the best validation loss
  pack      compact exact form of a checkpoint (to bring one back from a remote GPU machine); unpack: back
  export    write the HF directory (config.json, model.safetensors, tokenizer*) that `bitnet convert` reads,
            torch W1.58A8 reference logits for a few prompts, and the unigram baseline perplexity
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

BOS, EOS = "<|begin_of_text|>", "<|end_of_text|>"
EOT = "<|eot_id|>"
SPECIALS = [BOS, EOS, EOT]  # ids 0, 1, 2
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ message['role'] | capitalize }}: {{ message['content'] | trim }}<|eot_id|>"
    "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)


# ----------------------------------------------------------------------------------------------------------
# tokenizer and data
# ----------------------------------------------------------------------------------------------------------
def cmd_tokenize(args):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=args.vocab, special_tokens=SPECIALS, min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train([os.path.join(args.corpus, "train.txt")], trainer)
    os.makedirs(args.data, exist_ok=True)
    tok.save(os.path.join(args.data, "tokenizer.json"))
    with open(os.path.join(args.data, "tokenizer_config.json"), "w") as f:
        json.dump({"add_bos_token": True, "add_eos_token": False, "bos_token": BOS, "eos_token": EOS,
                   "chat_template": CHAT_TEMPLATE, "model_max_length": 2048,
                   "tokenizer_class": "PreTrainedTokenizerFast"}, f, indent=2)
    for name in ("train", "heldout"):
        with open(os.path.join(args.corpus, f"{name}.txt")) as f:
            ids = tok.encode(f.read()).ids
        np.save(os.path.join(args.data, f"{name}.npy"), np.array(ids, dtype=np.uint16))
        print(f"{name}: {len(ids)} tokens")
    print("vocab", tok.get_vocab_size())


def load_data(data_dir, val_frac):
    ids = np.load(os.path.join(data_dir, "train.npy")).astype(np.int64)
    # validation: 20 evenly spaced slices of the training stream (excluded from training)
    n = len(ids)
    nval = int(n * val_frac)
    piece = nval // 20
    mask = np.ones(n, dtype=bool)
    val = []
    for j in range(20):
        start = int((j + 0.5) * n / 20)
        mask[start:start + piece] = False
        val.append(ids[start:start + piece])
    return torch.from_numpy(ids[mask]), torch.from_numpy(np.concatenate(val))


def batch(stream, bsz, seq, gen, device):
    """[BOS] + a random slice of the stream: the same shape as a perplexity chunk or a prompt."""
    starts = torch.randint(0, len(stream) - seq, (bsz,), generator=gen)
    x = torch.stack([stream[s:s + seq] for s in starts.tolist()])
    x[:, 0] = 0  # the slice's first token becomes BOS, as in a perplexity chunk
    inp = x[:, :-1]
    tgt = x[:, 1:].clone()
    return inp.to(device), tgt.to(device)


# ----------------------------------------------------------------------------------------------------------
# model
# ----------------------------------------------------------------------------------------------------------
def ternarize(w):
    s = w.abs().mean().clamp(min=1e-5)
    return (w / s).round().clamp(-1, 1), s


def act_quant(x):
    m = x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
    s = 127.0 / m
    return (x * s).round().clamp(-128, 127) / s


class BitLinear(nn.Linear):
    def __init__(self, fin, fout):
        super().__init__(fin, fout, bias=False)

    def forward(self, x):
        x32 = x.float()
        w = self.weight
        t, s = ternarize(w)
        wq = w + (t * s - w).detach()
        xq = x32 + (act_quant(x32) - x32).detach()
        return F.linear(xq.to(x.dtype), wq.to(x.dtype))


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight).to(x.dtype)


def rope_tables(seq, head_dim, theta, device):
    inv = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    ang = torch.arange(seq, dtype=torch.float64)[:, None] * inv[None, :]
    ang = torch.cat([ang, ang], dim=-1)  # NEOX: element i pairs with i + head_dim/2
    return ang.cos().float().to(device), ang.sin().float().to(device)


def apply_rope(x, cos, sin):
    half = x.shape[-1] // 2
    rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rot * sin


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, hd = c["hidden_size"], c["head_dim"]
        self.nh, self.nkv, self.hd = c["num_attention_heads"], c["num_key_value_heads"], hd
        eps = c["rms_norm_eps"]
        self.input_layernorm = RMSNorm(d, eps)
        self.q_proj = BitLinear(d, self.nh * hd)
        self.k_proj = BitLinear(d, self.nkv * hd)
        self.v_proj = BitLinear(d, self.nkv * hd)
        self.attn_sub_norm = RMSNorm(self.nh * hd, eps)
        self.o_proj = BitLinear(self.nh * hd, d)
        self.post_attention_layernorm = RMSNorm(d, eps)
        ff = c["intermediate_size"]
        self.gate_proj = BitLinear(d, ff)
        self.up_proj = BitLinear(d, ff)
        self.ffn_sub_norm = RMSNorm(ff, eps)
        self.down_proj = BitLinear(ff, d)
        self.drop = nn.Dropout(c.get("dropout", 0.0))

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        a = self.input_layernorm(x)
        q = self.q_proj(a).view(B, T, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(a).view(B, T, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(a).view(B, T, self.nkv, self.hd).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        rep = self.nh // self.nkv
        k = k.repeat_interleave(rep, dim=1)  # query head h reads KV head h // rep
        v = v.repeat_interleave(rep, dim=1)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        o = o.transpose(1, 2).reshape(B, T, self.nh * self.hd)
        x = x + self.drop(self.o_proj(self.attn_sub_norm(o)))
        b = self.post_attention_layernorm(x)
        f = F.relu(self.gate_proj(b)).pow(2) * self.up_proj(b)
        return x + self.drop(self.down_proj(self.ffn_sub_norm(f)))


class BitNet(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList(Block(c) for _ in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        nn.init.normal_(self.embed_tokens.weight, std=c["initializer_range"])
        for m in self.modules():
            if isinstance(m, BitLinear):
                nn.init.normal_(m.weight, std=c["initializer_range"])
        self._rope = None

    def forward(self, ids):
        T = ids.shape[1]
        if self._rope is None or self._rope[0].shape[0] < T or self._rope[0].device != ids.device:
            self._rope = rope_tables(max(T, self.c["max_position_embeddings"]), self.c["head_dim"],
                                     self.c["rope_theta"], ids.device)
        cos, sin = self._rope[0][:T], self._rope[1][:T]
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x, cos, sin)
        h = self.norm(x)
        return F.linear(h, self.embed_tokens.weight.to(h.dtype))


def hf_config(a, vocab):
    hd = a.d // a.heads
    return {
        "architectures": ["BitNetForCausalLM"], "model_type": "bitnet",
        "vocab_size": vocab, "hidden_size": a.d, "intermediate_size": a.ffn,
        "num_hidden_layers": a.layers, "num_attention_heads": a.heads, "num_key_value_heads": a.kv_heads,
        "head_dim": hd, "hidden_act": "relu2", "max_position_embeddings": a.ctx, "rms_norm_eps": 1e-5,
        "rope_theta": a.rope_theta, "rope_parameters": {"rope_theta": a.rope_theta, "rope_type": "default"},
        "tie_word_embeddings": True, "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": None, "initializer_range": 0.02,
        "use_cache": True, "dtype": "float32", "dropout": a.dropout,
    }


def add_model_args(p):
    p.add_argument("--d", type=int, default=256)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--ffn", type=int, default=768)
    p.add_argument("--ctx", type=int, default=512)
    p.add_argument("--rope-theta", type=float, default=10000.0)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--bsz", type=int, default=16)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--bf16", action="store_true", help="autocast matmuls to bfloat16")


def make_model(a, data_dir):
    from tokenizers import Tokenizer
    vocab = Tokenizer.from_file(os.path.join(data_dir, "tokenizer.json")).get_vocab_size()
    c = hf_config(a, vocab)
    return BitNet(c).to(a.device), c


def param_groups(model, wd):
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (decay if isinstance(dict(model.named_modules()).get(n.rsplit(".", 1)[0]), BitLinear)
         else no_decay).append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def autocast(a):
    if a.bf16:
        return torch.autocast(device_type=a.device.split(":")[0], dtype=torch.bfloat16)
    return torch.autocast(device_type="cpu", enabled=False)


def cmd_bench(a):
    torch.set_num_threads(a.threads)
    model, c = make_model(a, a.data)
    nparam = sum(p.numel() for p in model.parameters())
    train, _ = load_data(a.data, 0.01)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    for i in range(a.steps + 2):
        if i == 2:
            if a.device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.time()
        x, y = batch(train, a.bsz, a.seq + 1, gen, a.device)
        with autocast(a):
            loss = F.cross_entropy(model(x).float().view(-1, c["vocab_size"]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if a.device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.time() - t0
    print(f"params {nparam/1e6:.2f}M  {a.steps*a.bsz*a.seq/dt:.0f} tok/s  ({dt/a.steps:.3f} s/step) loss {loss.item():.3f}")


@torch.no_grad()
def evaluate(model, val, a, c, n_batches=None):
    model.eval()
    seq = a.seq + 1
    starts = list(range(0, len(val) - seq, a.seq))
    if n_batches:
        starts = starts[: n_batches * a.bsz]
    tot, cnt = 0.0, 0
    for i in range(0, len(starts), a.bsz):
        x = torch.stack([val[s:s + seq] for s in starts[i:i + a.bsz]]).clone()
        x[:, 0] = 0
        inp, tgt = x[:, :-1].to(a.device), x[:, 1:].to(a.device)
        with autocast(a):
            logits = model(inp).float()
        tot += F.cross_entropy(logits.view(-1, c["vocab_size"]), tgt.reshape(-1), reduction="sum").item()
        cnt += tgt.numel()
    model.train()
    return tot / cnt


def save_ckpt(path, model, opt, c, step, extra):
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict() if opt else None, "config": c,
                "step": step, **extra}, tmp)
    os.replace(tmp, path)


def cmd_train(a):
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    if a.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
    model, c = make_model(a, a.data)
    nparam = sum(p.numel() for p in model.parameters())
    train, val = load_data(a.data, a.val_frac)
    print(f"params {nparam/1e6:.2f}M  train {len(train)} tokens  val {len(val)} tokens  config {json.dumps(c)}",
          flush=True)
    opt = torch.optim.AdamW(param_groups(model, a.wd), lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    os.makedirs(a.out, exist_ok=True)
    gen = torch.Generator().manual_seed(a.seed)
    t0 = time.time()
    deadline = t0 + a.minutes * 60
    best = float("inf")
    step, tokens, ema = 0, 0, None
    last_eval = t0
    log = open(os.path.join(a.out, "train.log"), "a")

    def lr_at(frac, step):
        warm = min(1.0, (step + 1) / a.warmup)
        return a.lr * warm * (a.min_lr_frac + (1 - a.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))

    while True:
        now = time.time()
        frac = (now - t0) / (deadline - t0)
        if a.max_steps:
            frac = max(frac, step / a.max_steps)
        done = frac >= 1.0
        if done or now - last_eval >= a.eval_every_s:
            last_eval = now
            vl = evaluate(model, val, a, c, n_batches=a.eval_batches)
            msg = (f"step {step} tokens {tokens} elapsed {now - t0:.0f}s lr {lr_at(frac, step):.2e} "
                   f"train {ema if ema is None else round(ema, 4)} val {vl:.4f} ppl {math.exp(vl):.2f}")
            print(msg, flush=True)
            log.write(msg + "\n")
            log.flush()
            if vl < best:
                best = vl
                save_ckpt(os.path.join(a.out, "best.pt"), model, None, c, step, {"val": vl})
            save_ckpt(os.path.join(a.out, "last.pt"), model, opt, c, step, {"val": vl})
        if done:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(frac, step)
        x, y = batch(train, a.bsz, a.seq + 1, gen, a.device)
        with autocast(a):
            loss = F.cross_entropy(model(x).float().view(-1, c["vocab_size"]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        tokens += y.numel()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
    print(f"done: {step} steps, {tokens} tokens, best val {best:.4f} (ppl {math.exp(best):.2f})", flush=True)


# ----------------------------------------------------------------------------------------------------------
# export
# ----------------------------------------------------------------------------------------------------------
def ternarize_like_converter(w):
    """FORMATS.md: s = max(mean|W|, 1e-5) with the mean in float64 rounded to f32; t = round-half-even(W/s)."""
    s = np.float32(max(float(np.abs(w.astype(np.float64)).mean()), 1e-5))
    t = np.clip(np.round(w / s), -1, 1).astype(np.float32)
    return t, s


def reference_forward(sd, c, ids):
    """W1.58A8 forward in float64 on the converter's ternary weights and the F16 embedding."""
    dev = torch.float64
    emb = torch.from_numpy(sd["model.embed_tokens.weight"].astype(np.float16).astype(np.float64))
    eps = c["rms_norm_eps"]
    nh, nkv, hd = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]

    def norm(x, name):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * torch.from_numpy(sd[name].astype(np.float64))

    def bl(x, name):
        t, s = ternarize_like_converter(sd[name])
        m = x.abs().amax(-1, keepdim=True).clamp(min=1e-5)
        sx = 127.0 / m
        q = torch.round(x * sx).clamp(-128, 127)
        return (q @ torch.from_numpy(t.astype(np.float64)).T) / sx * float(s)

    T = len(ids)
    cos, sin = rope_tables(T, hd, c["rope_theta"], "cpu")
    cos, sin = cos.to(dev), sin.to(dev)
    x = emb[torch.tensor(ids)]
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        a = norm(x, p + "input_layernorm.weight")
        q = bl(a, p + "self_attn.q_proj.weight").view(T, nh, hd).transpose(0, 1)
        k = bl(a, p + "self_attn.k_proj.weight").view(T, nkv, hd).transpose(0, 1)
        v = bl(a, p + "self_attn.v_proj.weight").view(T, nkv, hd).transpose(0, 1)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        k = k.repeat_interleave(nh // nkv, 0)
        v = v.repeat_interleave(nh // nkv, 0)
        att = (q @ k.transpose(1, 2)) / math.sqrt(hd)
        att = att.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf")).softmax(-1)
        o = (att @ v).transpose(0, 1).reshape(T, nh * hd)
        x = x + bl(norm(o, p + "self_attn.attn_sub_norm.weight"), p + "self_attn.o_proj.weight")
        b = norm(x, p + "post_attention_layernorm.weight")
        f = F.relu(bl(b, p + "mlp.gate_proj.weight")).pow(2) * bl(b, p + "mlp.up_proj.weight")
        x = x + bl(norm(f, p + "mlp.ffn_sub_norm.weight"), p + "mlp.down_proj.weight")
    return (norm(x, "model.norm.weight") @ emb.T).float().numpy()


HF_NAMES = {
    "input_layernorm": "input_layernorm", "post_attention_layernorm": "post_attention_layernorm",
    "q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj", "v_proj": "self_attn.v_proj",
    "o_proj": "self_attn.o_proj", "attn_sub_norm": "self_attn.attn_sub_norm",
    "gate_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj", "down_proj": "mlp.down_proj",
    "ffn_sub_norm": "mlp.ffn_sub_norm",
}


def to_hf_state(state):
    out = {}
    for k, v in state.items():
        v = v.detach().float().cpu().numpy()
        if k.startswith("layers."):
            _, i, mod, leaf = k.split(".")
            out[f"model.layers.{i}.{HF_NAMES[mod]}.{leaf}"] = v
        else:
            out["model." + k] = v
    return out


PROMPTS = ["In the beginning", "And the LORD said unto Moses,", "Alice was beginning to get very tired",
           "The king of Israel"]


def cmd_export(a):
    import shutil
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer

    ck = torch.load(a.ckpt, map_location="cpu")
    c = ck["config"]
    print(f"checkpoint step {ck['step']} val {ck.get('val')}")
    sd = to_hf_state(ck["model"])
    os.makedirs(a.hf, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in sd.items()}, os.path.join(a.hf, "model.safetensors"))
    hfc = {k: v for k, v in c.items() if k != "dropout"}
    with open(os.path.join(a.hf, "config.json"), "w") as f:
        json.dump(hfc, f, indent=2)
    for n in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(a.data, n), os.path.join(a.hf, n))

    # reference logits: the prompts, and the first 32 tokens of the held-out text, each after BOS;
    # tensors seqN [len, vocab] (logits for the next token) and idsN [len] (the ids, as f32)
    tok = Tokenizer.from_file(os.path.join(a.data, "tokenizer.json"))
    held_ids = np.load(os.path.join(a.data, "heldout.npy")).astype(np.int64)
    seqs = [[0] + tok.encode(p).ids for p in PROMPTS] + [[0] + held_ids[:32].tolist()]
    refs = {}
    for i, ids in enumerate(seqs):
        refs[f"seq{i}"] = np.ascontiguousarray(reference_forward(sd, c, ids))
        refs[f"ids{i}"] = np.array(ids, np.float32)
    save_file(refs, a.logits, metadata={"producer": "tools/shipped-model/train.py export (torch W1.58A8, f64)",
                                        "prompts": json.dumps(PROMPTS)})

    # unigram baseline on the held-out text: add-one smoothed train-split token frequencies
    train = np.load(os.path.join(a.data, "train.npy")).astype(np.int64)
    held = np.load(os.path.join(a.data, "heldout.npy")).astype(np.int64)
    counts = np.bincount(train, minlength=c["vocab_size"]).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    print(f"unigram baseline (add-one) on held-out: ppl {math.exp(-logp[held].mean()):.2f} over {len(held)} tokens")
    print(f"wrote {a.hf}")


# ----------------------------------------------------------------------------------------------------------
# pack / unpack: a compact exact form of a checkpoint (2-bit ternary codes + per-tensor scales, F16 embedding,
# F32 norms) to bring a model back from a remote training machine; unpack rebuilds latent f32 weights
# W = t * s / f (f = fraction of non-zero t), whose absmean ternarisation gives back exactly t and s.
# ----------------------------------------------------------------------------------------------------------
def cmd_pack(a):
    from safetensors.numpy import save_file
    ck = torch.load(a.ckpt, map_location="cpu")
    emb, rest = {}, {}
    for k, v in ck["model"].items():
        v = v.detach().float()
        if k == "embed_tokens.weight":
            emb[k] = v.half().numpy()
        elif v.dim() == 2:
            t, s = ternarize(v)
            codes = (t + 1).to(torch.uint8).flatten().numpy()
            codes = np.concatenate([codes, np.zeros((-len(codes)) % 4, np.uint8)]).reshape(-1, 4)
            rest[k + ".codes"] = codes[:, 0] | codes[:, 1] << 2 | codes[:, 2] << 4 | codes[:, 3] << 6
            rest[k + ".scale"] = np.array([s.item()], np.float32)
            rest[k + ".shape"] = np.array(v.shape, np.int64)
        else:
            rest[k] = v.numpy()
    os.makedirs(a.out, exist_ok=True)
    meta = {"config": json.dumps(ck["config"]), "step": str(ck["step"]), "val": str(ck.get("val"))}
    save_file(emb, os.path.join(a.out, "packed-emb.safetensors"), metadata=meta)
    save_file(rest, os.path.join(a.out, "packed-rest.safetensors"), metadata=meta)


def cmd_unpack(a):
    from safetensors import safe_open
    state = {}
    for n in ("packed-emb.safetensors", "packed-rest.safetensors"):
        with safe_open(os.path.join(a.packed, n), "np") as f:
            meta = f.metadata()
            for k in f.keys():
                state[k] = f.get_tensor(k)
    model = {}
    for k, v in state.items():
        if k.endswith(".codes"):
            base = k[: -len(".codes")]
            shape = tuple(int(x) for x in state[base + ".shape"])
            codes = np.stack([(v >> (2 * j)) & 3 for j in range(4)], axis=1).reshape(-1)
            t = codes[: int(np.prod(shape))].astype(np.float32).reshape(shape) - 1.0
            s = float(state[base + ".scale"][0])
            f = max(float(np.count_nonzero(t)) / t.size, 1.0 / t.size)
            model[base] = torch.from_numpy((t * np.float32(s / f)).astype(np.float32))
        elif k.endswith(".scale") or k.endswith(".shape"):
            continue
        else:
            model[k] = torch.from_numpy(v.astype(np.float32))
    torch.save({"model": model, "opt": None, "config": json.loads(meta["config"]), "step": int(meta["step"]),
                "val": float(meta["val"])}, a.out)
    print(f"wrote {a.out} (step {meta['step']}, val {meta['val']})")


def main():
    ap = argparse.ArgumentParser(description="train the shipped BitNet b1.58 model")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("tokenize")
    p.add_argument("--corpus", default="/tmp/shipped-corpus")
    p.add_argument("--data", default="/tmp/shipped-data")
    p.add_argument("--vocab", type=int, default=8192)
    p = sub.add_parser("bench")
    add_model_args(p)
    p.add_argument("--data", default="/tmp/shipped-data")
    p.add_argument("--steps", type=int, default=5)
    p = sub.add_parser("train")
    add_model_args(p)
    p.add_argument("--data", default="/tmp/shipped-data")
    p.add_argument("--out", default="/tmp/shipped-train")
    p.add_argument("--minutes", type=float, default=60)
    p.add_argument("--max-steps", type=int, default=0)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--min-lr-frac", type=float, default=0.05)
    p.add_argument("--wd", type=float, default=0.05)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--val-frac", type=float, default=0.01)
    p.add_argument("--eval-every-s", type=float, default=300)
    p.add_argument("--eval-batches", type=int, default=0)
    p.add_argument("--seed", type=int, default=1580)
    p = sub.add_parser("export")
    p.add_argument("--ckpt", default="/tmp/shipped-train/best.pt")
    p.add_argument("--data", default="/tmp/shipped-data")
    p.add_argument("--hf", default="/tmp/shipped-hf")
    p.add_argument("--logits", default="models/bitnet-b158-kjv-29m.torch-logits.safetensors")
    p = sub.add_parser("pack")
    p.add_argument("--ckpt", required=True)
    p.add_argument("--out", required=True)
    p = sub.add_parser("unpack")
    p.add_argument("--packed", required=True)
    p.add_argument("--out", required=True)
    a = ap.parse_args()
    {"tokenize": cmd_tokenize, "bench": cmd_bench, "train": cmd_train, "export": cmd_export, "pack": cmd_pack,
     "unpack": cmd_unpack}[a.cmd](a)


if __name__ == "__main__":
    main()
