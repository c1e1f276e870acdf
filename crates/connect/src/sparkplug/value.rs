//! Sparkplug data types and the typed value of a metric.

use super::proto::payload::Metric;
use super::proto::payload::metric::Value as Wire;
use crate::Value;

/// Data type codes of the specification (6.4.16). Array types (22–34) are recognised and
/// skipped like data sets and templates: they are not time-series values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum DataType {
    Unknown = 0,
    Int8 = 1,
    Int16 = 2,
    Int32 = 3,
    Int64 = 4,
    UInt8 = 5,
    UInt16 = 6,
    UInt32 = 7,
    UInt64 = 8,
    Float = 9,
    Double = 10,
    Boolean = 11,
    String = 12,
    DateTime = 13,
    Text = 14,
    Uuid = 15,
    DataSet = 16,
    Bytes = 17,
    File = 18,
    Template = 19,
    PropertySet = 20,
    PropertySetList = 21,
    /// 22..=34: Int8Array … StringArray.
    Array = 22,
}

impl DataType {
    pub fn from_code(code: u32) -> DataType {
        use DataType::*;
        match code {
            1 => Int8,
            2 => Int16,
            3 => Int32,
            4 => Int64,
            5 => UInt8,
            6 => UInt16,
            7 => UInt32,
            8 => UInt64,
            9 => Float,
            10 => Double,
            11 => Boolean,
            12 => String,
            13 => DateTime,
            14 => Text,
            15 => Uuid,
            16 => DataSet,
            17 => Bytes,
            18 => File,
            19 => Template,
            20 => PropertySet,
            21 => PropertySetList,
            22..=34 => Array,
            _ => Unknown,
        }
    }

    /// The natural Sparkplug type for a value we publish.
    pub fn of(value: &Value) -> DataType {
        match value {
            Value::Bool(_) => DataType::Boolean,
            Value::Int(_) => DataType::Int64,
            Value::UInt(_) => DataType::UInt64,
            Value::Float(_) => DataType::Double,
            Value::Text(_) => DataType::String,
            Value::Bytes(_) => DataType::Bytes,
        }
    }
}

fn carried(wire: Option<&Wire>) -> &'static str {
    match wire {
        None => "no value",
        Some(Wire::IntValue(_)) => "int_value",
        Some(Wire::LongValue(_)) => "long_value",
        Some(Wire::FloatValue(_)) => "float_value",
        Some(Wire::DoubleValue(_)) => "double_value",
        Some(Wire::BooleanValue(_)) => "boolean_value",
        Some(Wire::StringValue(_)) => "string_value",
        Some(Wire::BytesValue(_)) => "bytes_value",
        Some(Wire::DatasetValue(_)) => "dataset_value",
        Some(Wire::TemplateValue(_)) => "template_value",
        Some(Wire::ExtensionValue(_)) => "extension_value",
    }
}

/// The value of `metric` read as `datatype` (from the metric or, in DATA messages, from its
/// birth). `Ok(None)`: no time-series value (explicit null, or a data set, template, property
/// set or array, which are skipped). `Err(what it carried)`: the value does not fit the type.
pub fn metric_value(metric: &Metric, datatype: DataType) -> Result<Option<Value>, String> {
    use DataType as T;
    if metric.is_null == Some(true) {
        return Ok(None);
    }
    let wire = metric.value.as_ref();
    // Signed 8/16/32-bit values travel in the unsigned 32-bit field as two's complement;
    // truncating to the declared width reads both sign-extended and narrow encodings.
    let value = match (datatype, wire) {
        (T::Int8, Some(&Wire::IntValue(v))) => Value::Int(i64::from(v as u8 as i8)),
        (T::Int16, Some(&Wire::IntValue(v))) => Value::Int(i64::from(v as u16 as i16)),
        (T::Int32, Some(&Wire::IntValue(v))) => Value::Int(i64::from(v as i32)),
        (T::Int64 | T::DateTime, Some(&Wire::LongValue(v))) => Value::Int(v as i64),
        (T::UInt8 | T::UInt16 | T::UInt32, Some(&Wire::IntValue(v))) => Value::UInt(u64::from(v)),
        // Some publishers put 32-bit unsigned values in the 64-bit field.
        (T::UInt32 | T::UInt64, Some(&Wire::LongValue(v))) => Value::UInt(v),
        (T::Float, Some(&Wire::FloatValue(v))) => Value::Float(f64::from(v)),
        (T::Double, Some(&Wire::DoubleValue(v))) => Value::Float(v),
        (T::Boolean, Some(&Wire::BooleanValue(v))) => Value::Bool(v),
        (T::String | T::Text | T::Uuid, Some(Wire::StringValue(v))) => Value::Text(v.clone()),
        (T::Bytes | T::File, Some(Wire::BytesValue(v))) => Value::Bytes(v.clone()),
        (T::DataSet | T::Template | T::PropertySet | T::PropertySetList | T::Array, _) => {
            return Ok(None);
        }
        (_, w) => return Err(carried(w).to_owned()),
    };
    if let Value::Float(f) = value
        && !f.is_finite()
    {
        // NaN is how some devices say "no reading"; it is not a measurement to store.
        return Ok(None);
    }
    Ok(Some(value))
}

/// Writes `value` into `metric` in the field its natural type uses.
pub fn set_metric_value(metric: &mut Metric, value: &Value) {
    metric.value = Some(match value {
        Value::Bool(b) => Wire::BooleanValue(*b),
        Value::Int(i) => Wire::LongValue(*i as u64),
        Value::UInt(u) => Wire::LongValue(*u),
        Value::Float(f) => Wire::DoubleValue(*f),
        Value::Text(s) => Wire::StringValue(s.clone()),
        Value::Bytes(b) => Wire::BytesValue(b.clone()),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(datatype: DataType, wire: Wire) -> Metric {
        Metric {
            datatype: Some(datatype as u32),
            value: Some(wire),
            ..Default::default()
        }
    }

    #[test]
    fn signed_small_integers_read_both_encodings() {
        let narrow = metric(DataType::Int8, Wire::IntValue(0xFB));
        let wide = metric(DataType::Int8, Wire::IntValue(-5i32 as u32));
        assert_eq!(
            metric_value(&narrow, DataType::Int8),
            Ok(Some(Value::Int(-5)))
        );
        assert_eq!(
            metric_value(&wide, DataType::Int8),
            Ok(Some(Value::Int(-5)))
        );
        let m = metric(DataType::Int16, Wire::IntValue(-300i32 as u32));
        assert_eq!(
            metric_value(&m, DataType::Int16),
            Ok(Some(Value::Int(-300)))
        );
    }

    #[test]
    fn a_value_in_the_wrong_field_is_a_mismatch() {
        let m = metric(DataType::Double, Wire::StringValue("x".to_owned()));
        assert_eq!(
            metric_value(&m, DataType::Double),
            Err("string_value".to_owned())
        );
    }
}
