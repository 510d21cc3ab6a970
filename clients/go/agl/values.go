package agl

import (
	"fmt"
	"math"
	"reflect"
	"slices"

	"google.golang.org/protobuf/types/known/structpb"

	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
)

// AnyValueOf converts a Go value to an attribute value (OTLP AnyValue): strings, bools, integers,
// floats, []byte, slices and arrays (arrays), maps with string keys (kvlists, in key order so
// that equal maps encode equally), nil (the empty value) and *aglv1.AnyValue as it is. Anything
// else becomes its fmt.Sprint string, as OpenTelemetry SDKs do. An unsigned integer above
// math.MaxInt64 becomes a double, the nearest thing the wire format has.
func AnyValueOf(v any) *aglv1.AnyValue {
	switch x := v.(type) {
	case nil:
		return &aglv1.AnyValue{}
	case *aglv1.AnyValue:
		return x
	case string:
		return &aglv1.AnyValue{Value: &aglv1.AnyValue_StringValue{StringValue: x}}
	case bool:
		return &aglv1.AnyValue{Value: &aglv1.AnyValue_BoolValue{BoolValue: x}}
	case []byte:
		return &aglv1.AnyValue{Value: &aglv1.AnyValue_BytesValue{BytesValue: x}}
	case float64:
		return &aglv1.AnyValue{Value: &aglv1.AnyValue_DoubleValue{DoubleValue: x}}
	case float32:
		return &aglv1.AnyValue{Value: &aglv1.AnyValue_DoubleValue{DoubleValue: float64(x)}}
	case fmt.Stringer:
		return &aglv1.AnyValue{Value: &aglv1.AnyValue_StringValue{StringValue: x.String()}}
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return &aglv1.AnyValue{Value: &aglv1.AnyValue_IntValue{IntValue: rv.Int()}}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if u := rv.Uint(); u <= math.MaxInt64 {
			return &aglv1.AnyValue{Value: &aglv1.AnyValue_IntValue{IntValue: int64(u)}}
		}
		return &aglv1.AnyValue{Value: &aglv1.AnyValue_DoubleValue{DoubleValue: float64(rv.Uint())}}
	case reflect.Float32, reflect.Float64:
		return &aglv1.AnyValue{Value: &aglv1.AnyValue_DoubleValue{DoubleValue: rv.Float()}}
	case reflect.String:
		return &aglv1.AnyValue{Value: &aglv1.AnyValue_StringValue{StringValue: rv.String()}}
	case reflect.Bool:
		return &aglv1.AnyValue{Value: &aglv1.AnyValue_BoolValue{BoolValue: rv.Bool()}}
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			return &aglv1.AnyValue{Value: &aglv1.AnyValue_ArrayValue{ArrayValue: &aglv1.ArrayValue{}}}
		}
		values := make([]*aglv1.AnyValue, rv.Len())
		for i := range values {
			values[i] = AnyValueOf(rv.Index(i).Interface())
		}
		return &aglv1.AnyValue{Value: &aglv1.AnyValue_ArrayValue{ArrayValue: &aglv1.ArrayValue{Values: values}}}
	case reflect.Map:
		if rv.Type().Key().Kind() == reflect.String {
			keys := make([]string, 0, rv.Len())
			for _, k := range rv.MapKeys() {
				keys = append(keys, k.String())
			}
			slices.Sort(keys)
			kvs := make([]*aglv1.KeyValue, len(keys))
			for i, k := range keys {
				item := rv.MapIndex(reflect.ValueOf(k).Convert(rv.Type().Key()))
				kvs[i] = &aglv1.KeyValue{Key: k, Value: AnyValueOf(item.Interface())}
			}
			return &aglv1.AnyValue{Value: &aglv1.AnyValue_KvlistValue{KvlistValue: &aglv1.KeyValueList{Values: kvs}}}
		}
	case reflect.Pointer:
		if rv.IsNil() {
			return &aglv1.AnyValue{}
		}
		return AnyValueOf(rv.Elem().Interface())
	}
	return &aglv1.AnyValue{Value: &aglv1.AnyValue_StringValue{StringValue: fmt.Sprint(v)}}
}

// Attr is one span attribute; see [AnyValueOf] for the values it takes.
func Attr(key string, value any) *aglv1.KeyValue {
	return &aglv1.KeyValue{Key: key, Value: AnyValueOf(value)}
}

// Attrs converts a map to attributes, in key order.
func Attrs(attributes map[string]any) []*aglv1.KeyValue {
	keys := make([]string, 0, len(attributes))
	for k := range attributes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	kvs := make([]*aglv1.KeyValue, len(keys))
	for i, k := range keys {
		kvs[i] = Attr(k, attributes[k])
	}
	return kvs
}

// FromAnyValue converts an attribute value back to Go: string, bool, int64, float64, []byte,
// []any, map[string]any, or nil for the empty value.
func FromAnyValue(v *aglv1.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *aglv1.AnyValue_StringValue:
		return x.StringValue
	case *aglv1.AnyValue_BoolValue:
		return x.BoolValue
	case *aglv1.AnyValue_IntValue:
		return x.IntValue
	case *aglv1.AnyValue_DoubleValue:
		return x.DoubleValue
	case *aglv1.AnyValue_BytesValue:
		return x.BytesValue
	case *aglv1.AnyValue_ArrayValue:
		out := make([]any, len(x.ArrayValue.GetValues()))
		for i, item := range x.ArrayValue.GetValues() {
			out[i] = FromAnyValue(item)
		}
		return out
	case *aglv1.AnyValue_KvlistValue:
		return AttributeMap(x.KvlistValue.GetValues())
	}
	return nil
}

// AttributeMap converts attributes to a map (a later key wins over an earlier one).
func AttributeMap(kvs []*aglv1.KeyValue) map[string]any {
	out := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		out[kv.GetKey()] = FromAnyValue(kv.GetValue())
	}
	return out
}

// JSONValue converts a JSON-like Go value (what encoding/json produces: map[string]any, []any,
// float64, string, bool, nil; ints are accepted too) to a task input Value. Numbers MUST be finite.
func JSONValue(v any) (*structpb.Value, error) {
	value, err := structpb.NewValue(v)
	if err != nil {
		return nil, fmt.Errorf("agl: %v is not a JSON value: %w", v, err)
	}
	return value, nil
}
