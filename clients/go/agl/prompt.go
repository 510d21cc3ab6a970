package agl

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
)

// FormatPrompt fills a prompt template with vars, the way Python's str.format(**vars) fills an
// F_STRING template: "{name}" is replaced by vars["name"], "{name[key]}" and "{name[0]}" index
// into maps and lists, "{{" and "}}" are literal braces. Values print as Python prints them
// (integral numbers without ".0", True/False, None), except that maps and lists print as JSON.
// Conversions and format specs ("{x!r}", "{x:>10}") and JINJA templates are not supported and
// give an error that says so.
func FormatPrompt(template *aglv1.PromptTemplate, vars map[string]any) (string, error) {
	switch template.GetEngine() {
	case aglv1.PromptTemplateEngine_PROMPT_TEMPLATE_ENGINE_UNSPECIFIED, aglv1.PromptTemplateEngine_PROMPT_TEMPLATE_ENGINE_F_STRING:
	default:
		return "", fmt.Errorf("agl: prompt template engine %s is not supported by the Go client; use F_STRING",
			template.GetEngine())
	}
	text := template.GetTemplate()
	var out strings.Builder
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == '{' && i+1 < len(text) && text[i+1] == '{':
			out.WriteByte('{')
			i++
		case c == '}' && i+1 < len(text) && text[i+1] == '}':
			out.WriteByte('}')
			i++
		case c == '}':
			return "", fmt.Errorf("agl: prompt template has a single '}' at offset %d; write '}}' for a literal brace", i)
		case c == '{':
			end := strings.IndexByte(text[i:], '}')
			if end < 0 {
				return "", fmt.Errorf("agl: prompt template has an unclosed '{' at offset %d", i)
			}
			field := text[i+1 : i+end]
			value, err := lookupField(field, vars)
			if err != nil {
				return "", err
			}
			out.WriteString(pythonString(value))
			i += end
		default:
			out.WriteByte(c)
		}
	}
	return out.String(), nil
}

func lookupField(field string, vars map[string]any) (any, error) {
	if strings.ContainsAny(field, "!:") {
		return nil, fmt.Errorf("agl: prompt template field {%s}: conversions and format specs are not supported", field)
	}
	name, rest, _ := strings.Cut(field, "[")
	if name == "" {
		return nil, fmt.Errorf("agl: prompt template field {%s}: positional fields are not supported; name the field", field)
	}
	value, ok := vars[name]
	if !ok {
		return nil, fmt.Errorf("agl: prompt template field {%s}: the task input has no %q", field, name)
	}
	for rest != "" {
		key, after, ok := strings.Cut(rest, "]")
		if !ok {
			return nil, fmt.Errorf("agl: prompt template field {%s}: missing ']'", field)
		}
		switch container := value.(type) {
		case map[string]any:
			if value, ok = container[key]; !ok {
				return nil, fmt.Errorf("agl: prompt template field {%s}: no key %q", field, key)
			}
		case []any:
			index, err := strconv.Atoi(key)
			if err != nil || index < 0 || index >= len(container) {
				return nil, fmt.Errorf("agl: prompt template field {%s}: no index %q in a list of %d", field, key, len(container))
			}
			value = container[index]
		default:
			return nil, fmt.Errorf("agl: prompt template field {%s}: cannot index a %T", field, value)
		}
		rest = strings.TrimPrefix(after, "[")
	}
	return value, nil
}

func pythonString(value any) string {
	switch v := value.(type) {
	case nil:
		return "None"
	case string:
		return v
	case bool:
		if v {
			return "True"
		}
		return "False"
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			return strconv.FormatInt(int64(v), 10)
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	case map[string]any, []any:
		raw, err := json.Marshal(v)
		if err == nil {
			return string(raw)
		}
	}
	return fmt.Sprint(value)
}
