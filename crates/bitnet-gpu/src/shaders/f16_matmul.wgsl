// x · Wᵀ for an F16 matrix (the LM head), in the CPU kernel's summation order
// (bitnet-kernels `f16`: 32 lanes, lane l takes columns j ≡ l (mod 32) in order with a fused
// multiply-add, the lanes fold by the halving tree, the last cols mod 32 columns follow in
// order). Bit-identical where `fma` is fused; Vulkan allows an unfused one (lavapipe), which
// rounds each product first: within 2·(cols+1)·2⁻²⁴·Σ|w·x| of the CPU then. One workgroup of 32 threads per (row, token). Weights: two f16 per u32, row-major,
// each row starting on a u32 (cols even).

struct Params {
    rows: u32,     // rows of this chunk
    row0: u32,     // first row of the chunk in the whole matrix
    out_rows: u32, // rows of the whole matrix (output stride per token)
    cols: u32,
    groups_x: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> weights: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const LANES: u32 = 32u;
var<workgroup> lanes: array<f32, 32>;

fn weight(row_base: u32, j: u32) -> f32 {
    let pair = unpack2x16float(weights[(row_base + j) >> 1u]);
    return select(pair.x, pair.y, (j & 1u) == 1u);
}

@compute @workgroup_size(32)
fn f16_matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let row = wid.x + wid.y * params.groups_x;
    let token = wid.z;
    let cols = params.cols;
    let body = cols - cols % LANES;
    let live = row < params.rows;
    let row_base = row * cols;
    let x_base = token * cols;
    var acc = 0.0;
    if (live) {
        for (var j = lane; j < body; j = j + LANES) {
            acc = fma(weight(row_base, j), x[x_base + j], acc);
        }
    }
    lanes[lane] = acc;
    workgroupBarrier();
    for (var w = LANES / 2u; w > 0u; w = w / 2u) {
        if (lane < w) {
            lanes[lane] = lanes[lane] + lanes[lane + w];
        }
        workgroupBarrier();
    }
    if (live && lane == 0u) {
        var sum = lanes[0];
        for (var j = body; j < cols; j = j + 1u) {
            sum = fma(weight(row_base, j), x[x_base + j], sum);
        }
        out[token * params.out_rows + params.row0 + row] = sum;
    }
}
