// Per-token int8 activation quantization with the CPU engine's exact arithmetic
// (bitnet-kernels `quantize`): m = max |x_j| (f32), a = f32(127 / max(m, 1e-5)) computed in f64
// on the CPU and emulated here by an exact integer long division (correctly rounded, which is
// what the f64 division followed by the f32 cast gives: 53 >= 2·24 + 2 bits), then
// q_j = clamp(round_half_to_even(x_j · a), -128, 127), packed 4 per u32 (column 4k+b in byte b).
// One workgroup per token.

struct Params {
    cols: u32,
    tokens: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> codes: array<u32>;
@group(0) @binding(3) var<storage, read_write> scales: array<f32>;

const WG: u32 = 64u;
var<workgroup> partial_max: array<f32, 64>;
var<workgroup> token_scale: f32;

// The f32 nearest to 127 / m (m a finite positive f32 >= 1e-5), by restoring division on the
// 24-bit significand: no division instruction (WGSL's f32 division is not correctly rounded).
fn scale_from_max_abs(m: f32) -> f32 {
    let bits = bitcast<u32>(m);
    // Every f32 up to 0x3727C5AC (9.99999974737875e-6) is below the f64 constant 1e-5.
    if (bits <= 0x3727C5ACu) {
        return 12700000.0;
    }
    let significand = (bits & 0x007FFFFFu) | 0x00800000u;
    let exp_m = i32(bits >> 23u) - 150; // m = significand · 2^exp_m
    var r = 127u;
    var e = 0; // the weight of the next quotient bit is 2^e
    while (r < significand) {
        r = r << 1u;
        e = e - 1;
    }
    var q = 0u;
    for (var i = 0u; i < 25u; i = i + 1u) {
        q = q << 1u;
        if (r >= significand) {
            q = q | 1u;
            r = r - significand;
        }
        r = r << 1u;
    }
    // q holds 25 quotient bits, the first of weight 2^e; the last is the rounding bit.
    var mant = q >> 1u;
    let round_bit = (q & 1u) == 1u;
    let sticky = r != 0u;
    if (round_bit && (sticky || (mant & 1u) == 1u)) {
        mant = mant + 1u;
    }
    var top = e; // weight of the leading significand bit
    if (mant == 0x01000000u) {
        mant = mant >> 1u;
        top = top + 1;
    }
    let biased = top - exp_m + 127;
    return bitcast<f32>((u32(biased) << 23u) | (mant & 0x007FFFFFu));
}

fn quantize_one(v: f32, a: f32) -> u32 {
    let q = clamp(round(v * a), -128.0, 127.0);
    return u32(i32(q)) & 0xFFu;
}

@compute @workgroup_size(64)
fn quantize(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let token = wid.x;
    let cols = params.cols;
    let base = token * cols;
    var m = 0.0;
    for (var j = lid; j < cols; j = j + WG) {
        m = max(m, abs(x[base + j]));
    }
    partial_max[lid] = m;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w = w / 2u) {
        if (lid < w) {
            partial_max[lid] = max(partial_max[lid], partial_max[lid + w]);
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        let a = scale_from_max_abs(partial_max[0]);
        token_scale = a;
        scales[token] = a;
    }
    workgroupBarrier();
    let a = token_scale;
    let words = cols / 4u;
    for (var k = lid; k < words; k = k + WG) {
        let j = base + 4u * k;
        codes[token * words + k] = quantize_one(x[j], a)
            | (quantize_one(x[j + 1u], a) << 8u)
            | (quantize_one(x[j + 2u], a) << 16u)
            | (quantize_one(x[j + 3u], a) << 24u);
    }
}
