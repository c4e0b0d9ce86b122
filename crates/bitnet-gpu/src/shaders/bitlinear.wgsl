// BitLinear over repacked ternary weights (crate::repack): codes c = t + 1, 16 per u32, the
// shift-2j plane of word w holding columns 16w + 4j + b in byte b, so
// `(word >> 2j) & 0x03030303` is quad 4w + j as 4 int8 lanes for dot4I8Packed.
// D_quad = Σ c·q − Σ q over the quad's 4 columns is exact.
// One workgroup = 4 rows × 16 lanes; lane l takes quads k ≡ l (mod 16) in increasing k, the
// CPU kernel's order (bitnet-kernels `order`, SCALED_LANES = 16), so even the block-scaled f32
// sums equal the CPU's: lane += f32(D_quad) · s, lanes folded by the halving tree. The product
// is exact in f32 whether or not the device fuses fma (|D_quad| ≤ 512 and the block scales are
// f16 values: 10 + 11 significant bits), so the sums are bit-identical on every device.
//   per-tensor scale: y = (f32(D) / a) · s_W;   per-block scales: y = fold(lanes) / a.

struct Params {
    rows: u32,          // rows of this chunk
    row0: u32,          // first row of the chunk in the whole matrix
    out_rows: u32,      // rows of the whole matrix (output stride per token)
    words_per_row: u32, // cols / 16
    quads_per_block: u32, // 0: one per-tensor scale
    blocks_per_row: u32,
    groups_x: u32,      // workgroups along x of the 2-D dispatch
    tensor_scale: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> weights: array<u32>;
@group(0) @binding(2) var<storage, read> block_scales: array<f32>;
@group(0) @binding(3) var<storage, read> codes: array<u32>;
@group(0) @binding(4) var<storage, read> act_scales: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

const LANES: u32 = 16u;
var<workgroup> int_lanes: array<i32, 64>;
var<workgroup> float_lanes: array<f32, 64>;

@compute @workgroup_size(64)
fn bitlinear(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let group = wid.x + wid.y * params.groups_x;
    let slot = lid / LANES;
    let lane = lid % LANES;
    let row = group * 4u + slot;
    let token = wid.z;
    let words = params.words_per_row;
    let quads = words * 4u;
    let act_base = token * quads;
    let live = row < params.rows;
    let w_base = row * words;
    if (params.quads_per_block == 0u) {
        var d = 0;
        if (live) {
            for (var k = lane; k < quads; k = k + LANES) {
                let word = weights[w_base + (k >> 2u)];
                let c = (word >> (2u * (k & 3u))) & 0x03030303u;
                let q = codes[act_base + k];
                d = d + dot4I8Packed(c, q) - dot4I8Packed(0x01010101u, q);
            }
        }
        int_lanes[lid] = d;
    } else {
        var acc = 0.0;
        if (live) {
            let s_base = row * params.blocks_per_row;
            for (var k = lane; k < quads; k = k + LANES) {
                let word = weights[w_base + (k >> 2u)];
                let c = (word >> (2u * (k & 3u))) & 0x03030303u;
                let q = codes[act_base + k];
                let d = dot4I8Packed(c, q) - dot4I8Packed(0x01010101u, q);
                acc = fma(f32(d), block_scales[s_base + k / params.quads_per_block], acc);
            }
        }
        float_lanes[lid] = acc;
    }
    workgroupBarrier();
    for (var w = LANES / 2u; w > 0u; w = w / 2u) {
        if (lane < w) {
            int_lanes[lid] = int_lanes[lid] + int_lanes[lid + w];
            float_lanes[lid] = float_lanes[lid] + float_lanes[lid + w];
        }
        workgroupBarrier();
    }
    if (live && lane == 0u) {
        let a = act_scales[token];
        var y: f32;
        if (params.quads_per_block == 0u) {
            y = (f32(int_lanes[lid]) / a) * params.tensor_scale;
        } else {
            y = float_lanes[lid] / a;
        }
        out[token * params.out_rows + params.row0 + row] = y;
    }
}
