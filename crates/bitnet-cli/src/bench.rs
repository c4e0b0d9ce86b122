//! `bitnet bench`: prompt-processing (pp) and generation (tg) speed in llama-bench's conventions
//! and columns (markdown or JSON), and a read-bandwidth microbenchmark so decode speed can be
//! reported against the machine's physical limit. Each test's share of CPU time stolen by a
//! hypervisor is reported beside it (Linux: on stderr, and in the JSON). With `--json-schema
//! FILE` / `--grammar FILE`, sampled decodes with and without the constraint's token mask measure
//! its cost.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::bail;
use bitnet_gguf::GgufFile;
use bitnet_kernels::ThreadPool;

use crate::cpu_steal::CpuTimes;

/// Arguments of `bitnet bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Model file (GGUF).
    #[arg(short, long)]
    model: Option<PathBuf>,
    /// Prompt lengths to test (pp), comma-separated; 0 skips.
    #[arg(
        short = 'p',
        long = "n-prompt",
        default_value = "512",
        value_delimiter = ','
    )]
    n_prompt: Vec<usize>,
    /// Generation lengths to test (tg), comma-separated; 0 skips.
    #[arg(
        short = 'n',
        long = "n-gen",
        default_value = "128",
        value_delimiter = ','
    )]
    n_gen: Vec<usize>,
    /// Repetitions of each test (after one warm-up run).
    #[arg(short = 'r', long = "repetitions", default_value_t = 5)]
    repetitions: usize,
    /// Thread counts, comma-separated.
    #[arg(short = 't', long = "threads", value_delimiter = ',')]
    threads: Vec<usize>,
    /// Sequences decoded together in the tg test (comma-separated): each step runs one
    /// batched forward pass with one new token per sequence, as the server's continuous
    /// batching does; t/s is then the aggregate over all sequences. With any value above 1 the
    /// model is loaded as `serve --parallel` above 1 loads it (2-bit copies of trit5 matrices).
    #[arg(
        short = 'b',
        long = "batch",
        default_value = "1",
        value_delimiter = ','
    )]
    batch: Vec<usize>,
    /// Print JSON instead of a markdown table.
    #[arg(long)]
    json: bool,
    /// Measure the streaming read bandwidth (GB/s) instead of a model.
    #[arg(long)]
    bandwidth: bool,
    #[command(flatten)]
    load: crate::load::LoadArgs,
    /// With --json-schema or --grammar, each tg test also runs as a sampled decode (temperature
    /// 1, each token fed back) twice: free, and under the constraint's token mask; the
    /// difference is the cost of constrained decoding.
    #[command(flatten)]
    constraint: crate::constraint_args::ConstraintArgs,
}

/// One row of results.
struct BenchRow {
    test: String,
    threads: usize,
    n_prompt: usize,
    n_gen: usize,
    samples_ts: Vec<f64>,
    /// Percent of the CPU time wanted during the timed repetitions that the hypervisor stole.
    steal_percent: Option<f64>,
}

impl BenchRow {
    fn mean(&self) -> f64 {
        self.samples_ts.iter().sum::<f64>() / self.samples_ts.len() as f64
    }

    fn stddev(&self) -> f64 {
        let n = self.samples_ts.len();
        if n < 2 {
            return 0.0;
        }
        let m = self.mean();
        (self.samples_ts.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    }
}

/// Runs the benchmark and prints the table.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let threads = if args.threads.is_empty() {
        vec![bitnet_kernels::pool::default_threads()]
    } else {
        args.threads.clone()
    };
    if threads.contains(&0) {
        bail!("thread counts must be at least 1");
    }
    if args.repetitions == 0 {
        bail!("-r must be at least 1");
    }
    if args.batch.contains(&0) {
        bail!("batch sizes must be at least 1");
    }
    if args.bandwidth {
        return bandwidth(&threads, args.repetitions, args.json);
    }
    let Some(path) = args.model.as_ref() else {
        bail!("give a model with -m FILE (or --bandwidth for the memory benchmark)");
    };
    let (file, model) =
        crate::load::load_model(path, &args.load, args.batch.iter().any(|&b| b > 1))?;
    let size_bytes: u64 = file.tensors().iter().map(|t| t.n_bytes).sum();
    let n_params: u64 = file.tensors().iter().map(|t| t.n_elements).sum();
    let arch = file.architecture().unwrap_or("?").to_string();
    let n_vocab = model.n_vocab() as u32;
    let n_ctx = model.config().n_ctx_train;
    let tokenizer = bitnet_tokenizer::Tokenizer::from_gguf(&file)?;
    let constrained = args.constraint.compiler(&tokenizer)?;

    let mut rows = Vec::new();
    for &t in &threads {
        let pool = ThreadPool::new(t);
        // llama-bench feeds random tokens; any fixed pseudo-random ids will do.
        let token = |i: usize| ((i as u64 * 2654435761) % n_vocab as u64) as u32;
        for &n in args.n_prompt.iter().filter(|&&n| n > 0) {
            if n > n_ctx {
                bail!("-p {n} is longer than the model's context ({n_ctx})");
            }
            let tokens: Vec<u32> = (0..n).map(token).collect();
            let mut samples = Vec::new();
            let mut steal = StealMeter::default();
            for rep in 0..=args.repetitions {
                steal.start_after_warm_up(rep);
                let mut cache = model.new_cache(n);
                let start = Instant::now();
                model.forward(&tokens, &mut cache, n - 1, &pool)?;
                let secs = start.elapsed().as_secs_f64();
                if rep > 0 {
                    samples.push(n as f64 / secs);
                }
            }
            rows.push(BenchRow {
                test: format!("pp{n}"),
                threads: t,
                n_prompt: n,
                n_gen: 0,
                samples_ts: samples,
                steal_percent: steal.percent(),
            });
        }
        for &n in args.n_gen.iter().filter(|&&n| n > 0) {
            if n > n_ctx {
                bail!("-n {n} is longer than the model's context ({n_ctx})");
            }
            for &b in &args.batch {
                let mut samples = Vec::new();
                let mut steal = StealMeter::default();
                for rep in 0..=args.repetitions {
                    steal.start_after_warm_up(rep);
                    let mut caches: Vec<_> = (0..b).map(|_| model.new_cache(n)).collect();
                    let start = Instant::now();
                    for i in 0..n {
                        // Each sequence gets its own token stream.
                        let tokens: Vec<[u32; 1]> = (0..b).map(|s| [token(i + s * n)]).collect();
                        let mut segments: Vec<_> = caches
                            .iter_mut()
                            .zip(&tokens)
                            .map(|(cache, t)| bitnet_model::BatchSegment {
                                tokens: t,
                                cache,
                                logits_from: 0,
                            })
                            .collect();
                        model.forward_batch(&mut segments, &pool)?;
                    }
                    let secs = start.elapsed().as_secs_f64();
                    if rep > 0 {
                        samples.push((b * n) as f64 / secs);
                    }
                }
                rows.push(BenchRow {
                    test: if b == 1 {
                        format!("tg{n}")
                    } else {
                        format!("tg{n} x{b}")
                    },
                    threads: t,
                    n_prompt: 0,
                    n_gen: n,
                    samples_ts: samples,
                    steal_percent: steal.percent(),
                });
            }
            if constrained.is_some() {
                for (label, with) in [("sampled", None), ("constrained", constrained.as_ref())] {
                    let mut samples = Vec::new();
                    let (mut total, mut masks) = (0.0, 0.0);
                    let mut steal = StealMeter::default();
                    for rep in 0..=args.repetitions {
                        steal.start_after_warm_up(rep);
                        let (secs, mask_secs) =
                            sampled_decode(&model, &tokenizer, &pool, n, with, rep as u64)?;
                        if rep > 0 {
                            samples.push(n as f64 / secs);
                            total += secs;
                            masks += mask_secs;
                        }
                    }
                    if with.is_some() {
                        eprintln!(
                            "constraint masks: {:.0} µs per token, {:.1}% of the constrained decode time",
                            masks / (args.repetitions * n) as f64 * 1e6,
                            masks / total * 100.0
                        );
                    }
                    rows.push(BenchRow {
                        test: format!("tg{n} {label}"),
                        threads: t,
                        n_prompt: 0,
                        n_gen: n,
                        samples_ts: samples,
                        steal_percent: steal.percent(),
                    });
                }
            }
        }
    }

    let head = match args.load.head {
        bitnet_model::HeadFormat::AsStored => "",
        bitnet_model::HeadFormat::Q8_0 => ", head Q8_0",
        bitnet_model::HeadFormat::Q6K => ", head Q6_K",
    };
    let model_type = format!("{arch} {}{head}", file_type_name(&file));
    let isa = bitnet_kernels::active_isa().name();
    let (backend, device_info) = match model.gpu() {
        Some(gpu) => {
            let a = gpu.adapter();
            ("GPU", format!("{} ({})", a.name, a.backend))
        }
        None => ("CPU", isa.to_string()),
    };
    if args.json {
        let out: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "model_filename": path.display().to_string(),
                    "model_type": model_type,
                    "model_size": size_bytes,
                    "model_n_params": n_params,
                    "backend": backend,
                    "cpu_info": isa,
                    "gpu_info": model.gpu().map(|_| device_info.clone()),
                    "n_threads": r.threads,
                    "n_prompt": r.n_prompt,
                    "n_gen": r.n_gen,
                    "test": r.test,
                    "avg_ts": r.mean(),
                    "stddev_ts": r.stddev(),
                    "samples_ts": r.samples_ts,
                    "cpu_steal_percent": r.steal_percent,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("| model | size | params | backend | threads | test | t/s |");
        println!("| --- | ---: | ---: | --- | ---: | ---: | ---: |");
        for r in &rows {
            println!(
                "| {model_type} | {:.2} GiB | {:.2} B | {backend} ({device_info}) | {} | {} | {:.2} ± {:.2} |",
                size_bytes as f64 / (1u64 << 30) as f64,
                n_params as f64 / 1e9,
                r.threads,
                r.test,
                r.mean(),
                r.stddev()
            );
        }
        // On stderr, so that scripts reading the table's rows see only the table.
        let stolen: Vec<String> = rows
            .iter()
            .filter_map(|r| Some(format!("{} {:.1}%", r.test, r.steal_percent?)))
            .collect();
        if !stolen.is_empty() {
            eprintln!(
                "CPU time stolen by the hypervisor during the timed runs (/proc/stat steal, share of \
                 the time the CPUs ran or waited to run): {}",
                stolen.join(", ")
            );
        }
    }
    Ok(())
}

/// The steal counters over one test's timed repetitions (the warm-up run left out).
#[derive(Default)]
struct StealMeter {
    start: Option<CpuTimes>,
}

impl StealMeter {
    /// Takes the starting counters before repetition 1 (the first timed one).
    fn start_after_warm_up(&mut self, rep: usize) {
        if rep == 1 {
            self.start = CpuTimes::now();
        }
    }

    /// The stolen share since the start, where the counters are readable.
    fn percent(&self) -> Option<f64> {
        self.start?.steal_percent_until(&CpuTimes::now()?)
    }
}

/// Seconds for `n` decode steps that sample each token (temperature 1) and feed it back, under
/// `constraint`'s mask when given (a fresh constraint whenever one completes), and the seconds
/// of those spent computing masks.
fn sampled_decode(
    model: &bitnet_model::Model,
    tokenizer: &bitnet_tokenizer::Tokenizer,
    pool: &ThreadPool,
    n: usize,
    constraint: Option<&(
        bitnet_engine::ConstraintCompiler,
        bitnet_engine::ConstraintSpec,
    )>,
    seed: u64,
) -> anyhow::Result<(f64, f64)> {
    let mut sampler = bitnet_engine::Sampler::new(bitnet_engine::SamplingParams {
        temperature: 1.0,
        seed,
        ..Default::default()
    });
    let fresh = || {
        constraint
            .map(|(compiler, spec)| compiler.compile(spec))
            .transpose()
    };
    let mut active = fresh()?;
    let mut cache = model.new_cache(n + 1);
    let mut next = tokenizer.bos().unwrap_or(0);
    let mut mask_seconds = 0.0;
    let start = Instant::now();
    for _ in 0..n {
        let logits = model.forward(&[next], &mut cache, 0, pool)?;
        next = match active.as_mut() {
            None => sampler.sample(&logits),
            Some(c) => {
                let mask_start = Instant::now();
                let mask = c.mask()?;
                mask_seconds += mask_start.elapsed().as_secs_f64();
                let token = sampler.sample_where(&logits, |t| mask.allows(t));
                c.consume(token)?;
                if c.is_stopped() || tokenizer.is_end_of_generation(token) {
                    active = fresh()?;
                }
                token
            }
        };
    }
    Ok((start.elapsed().as_secs_f64(), mask_seconds))
}

/// The type of most 2-D weight tensors (the linears), as llama-bench's model label uses it.
fn file_type_name(file: &GgufFile) -> String {
    let mut counts: Vec<(&'static str, usize)> = Vec::new();
    for t in file.tensors().iter().filter(|t| t.dims.len() >= 2) {
        let name = t.ggml_type.name();
        match counts.iter_mut().find(|(n, _)| *n == name) {
            Some((_, count)) => *count += 1,
            None => counts.push((name, 1)),
        }
    }
    counts.sort_by_key(|&(_, count)| std::cmp::Reverse(count));
    counts.first().map_or("?", |(n, _)| n).to_string()
}

/// Streaming read bandwidth: every thread sums its share of a 2 GiB buffer; best of `reps`.
fn bandwidth(threads: &[usize], reps: usize, json: bool) -> anyhow::Result<()> {
    const BYTES: usize = 2 << 30;
    let words = BYTES / 8;
    let buffer: Vec<u64> = (0..words as u64).collect();
    let mut results = Vec::new();
    for &t in threads {
        let pool = ThreadPool::new(t);
        let mut best = 0.0f64;
        for _ in 0..=reps {
            let sums: Vec<std::sync::atomic::AtomicU64> = (0..t).map(|_| 0.into()).collect();
            let start = Instant::now();
            pool.run(t, &|part| {
                let range = bitnet_kernels::pool::split_range(words, t, part);
                let s = sum_words(&buffer[range]);
                sums[part].store(s, std::sync::atomic::Ordering::Relaxed);
            });
            let secs = start.elapsed().as_secs_f64();
            let total: u64 = sums
                .iter()
                .map(|s| s.load(std::sync::atomic::Ordering::Relaxed))
                .fold(0, u64::wrapping_add);
            std::hint::black_box(total);
            best = best.max(BYTES as f64 / secs / 1e9);
        }
        results.push((t, best));
    }
    if json {
        let out: Vec<_> = results
            .iter()
            .map(|&(t, gbs)| serde_json::json!({"test": "read_bandwidth", "bytes": BYTES, "n_threads": t, "best_gb_per_s": gbs}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("| test | threads | GB/s (best of {reps}) |");
        println!("| --- | ---: | ---: |");
        for (t, gbs) in results {
            println!("| read 2 GiB | {t} | {gbs:.1} |");
        }
    }
    Ok(())
}

/// Sum with eight independent accumulators, so the compiler vectorises it and the loop is bound by
/// memory, not by the add latency.
fn sum_words(words: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    let chunks = words.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] = acc[i].wrapping_add(c[i]);
        }
    }
    acc.iter().chain(tail).fold(0, |a, &b| a.wrapping_add(b))
}
