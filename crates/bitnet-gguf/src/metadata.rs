//! Typed GGUF metadata values: the thirteen GGUF value types (`ValueType`, with their on-disk
//! ids) and the parsed value (`MetadataValue`) with its accessors.

/// A GGUF metadata value. Arrays are homogeneous on disk (nested arrays carry their own
/// element type per sub-array).
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    U64(u64),
    I64(i64),
    F64(f64),
    Array(Vec<MetadataValue>),
}

/// The GGUF value type ids (`gguf_type` in ggml, `GGUFValueType` in gguf-py).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    /// The type for an on-disk id, `None` if unknown.
    pub fn from_id(id: u32) -> Option<ValueType> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// The on-disk id.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// The name gguf-py gives the type (`GGUFValueType.<NAME>`).
    pub fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "UINT8",
            I8 => "INT8",
            U16 => "UINT16",
            I16 => "INT16",
            U32 => "UINT32",
            I32 => "INT32",
            F32 => "FLOAT32",
            Bool => "BOOL",
            String => "STRING",
            Array => "ARRAY",
            U64 => "UINT64",
            I64 => "INT64",
            F64 => "FLOAT64",
        }
    }

    /// Bytes of a scalar of this type; `None` for strings and arrays.
    pub fn scalar_size(self) -> Option<usize> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }

    /// The fewest bytes one value of this type occupies on disk (a string is at least its
    /// 8-byte length, an array its 4-byte type and 8-byte count). Used to refuse counts the
    /// remaining bytes cannot hold before allocating anything.
    pub fn min_encoded_size(self) -> usize {
        match self {
            ValueType::String => 8,
            ValueType::Array => 12,
            scalar => scalar.scalar_size().unwrap_or(1),
        }
    }
}

impl MetadataValue {
    /// The value's GGUF type.
    pub fn value_type(&self) -> ValueType {
        use MetadataValue as M;
        match self {
            M::U8(_) => ValueType::U8,
            M::I8(_) => ValueType::I8,
            M::U16(_) => ValueType::U16,
            M::I16(_) => ValueType::I16,
            M::U32(_) => ValueType::U32,
            M::I32(_) => ValueType::I32,
            M::F32(_) => ValueType::F32,
            M::Bool(_) => ValueType::Bool,
            M::String(_) => ValueType::String,
            M::U64(_) => ValueType::U64,
            M::I64(_) => ValueType::I64,
            M::F64(_) => ValueType::F64,
            M::Array(_) => ValueType::Array,
        }
    }

    /// gguf-py's name of the value's type (`"UINT32"`, `"STRING"`, `"ARRAY"`, ...).
    pub fn type_name(&self) -> &'static str {
        self.value_type().name()
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetadataValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// Any integer type holding a value >= 0.
    pub fn as_u64(&self) -> Option<u64> {
        use MetadataValue as M;
        match *self {
            M::U8(v) => Some(v.into()),
            M::U16(v) => Some(v.into()),
            M::U32(v) => Some(v.into()),
            M::U64(v) => Some(v),
            M::I8(v) => u64::try_from(v).ok(),
            M::I16(v) => u64::try_from(v).ok(),
            M::I32(v) => u64::try_from(v).ok(),
            M::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any integer type whose value fits an i64.
    pub fn as_i64(&self) -> Option<i64> {
        use MetadataValue as M;
        match *self {
            M::U8(v) => Some(v.into()),
            M::U16(v) => Some(v.into()),
            M::U32(v) => Some(v.into()),
            M::U64(v) => i64::try_from(v).ok(),
            M::I8(v) => Some(v.into()),
            M::I16(v) => Some(v.into()),
            M::I32(v) => Some(v.into()),
            M::I64(v) => Some(v),
            _ => None,
        }
    }

    /// An f32, or an f64 rounded to f32.
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            MetadataValue::F32(v) => Some(v),
            MetadataValue::F64(v) => Some(v as f32),
            _ => None,
        }
    }

    /// The boolean, if this is a bool.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetadataValue::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[MetadataValue]> {
        match self {
            MetadataValue::Array(v) => Some(v),
            _ => None,
        }
    }
}
