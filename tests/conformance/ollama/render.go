// Renders an Ollama Go TEMPLATE the way Ollama's chat endpoint does (template/template.go Execute for templates
// that use .Messages, server/routes.go ChatHandler for the Modelfile SYSTEM), for check_templates.mjs.
// stdin: {"template": "...", "system": "<Modelfile SYSTEM>", "conversations": [[{"role","content"}, ...], ...]}
// stdout: JSON array of rendered prompts, one per conversation.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/template"
)

// Mirrors the fields of api.Message that templates read.
type Message struct {
	Role      string `json:"role"`
	Content   string `json:"content"`
	Thinking  string `json:"thinking,omitempty"`
	ToolCalls []any  `json:"tool_calls,omitempty"`
	ToolName  string `json:"tool_name,omitempty"`
	Images    []any  `json:"images,omitempty"`
}

type input struct {
	Template      string      `json:"template"`
	System        string      `json:"system"`
	Conversations [][]Message `json:"conversations"`
}

// collate: every system message goes into .System (joined by a blank line); consecutive messages of the same
// role are merged, except tool messages (Ollama's template.collate).
func collate(msgs []Message) (string, []*Message) {
	var system []string
	var collated []*Message
	for i := range msgs {
		if msgs[i].Role == "system" {
			system = append(system, msgs[i].Content)
		}
		if len(collated) > 0 && collated[len(collated)-1].Role == msgs[i].Role && msgs[i].Role != "tool" {
			collated[len(collated)-1].Content += "\n\n" + msgs[i].Content
		} else {
			collated = append(collated, &msgs[i])
		}
	}
	return strings.Join(system, "\n\n"), collated
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, "render.go: bad input:", err)
		os.Exit(2)
	}
	funcs := template.FuncMap{"json": func(v any) string { b, _ := json.Marshal(v); return string(b) }}
	tmpl, err := template.New("").Option("missingkey=zero").Funcs(funcs).Parse(in.Template)
	if err != nil {
		fmt.Fprintln(os.Stderr, "render.go: template does not parse:", err)
		os.Exit(1)
	}
	var out []string
	for _, conv := range in.Conversations {
		msgs := append([]Message(nil), conv...)
		// ChatHandler: the model's SYSTEM is prepended when the chat has no system message.
		if in.System != "" && (len(msgs) == 0 || msgs[0].Role != "system") {
			msgs = append([]Message{{Role: "system", Content: in.System}}, msgs...)
		}
		system, collated := collate(msgs)
		var b strings.Builder
		err := tmpl.Execute(&b, map[string]any{
			"System": system, "Messages": collated, "Tools": nil, "Response": "",
			"Think": false, "IsThinkSet": false, "Query": "", "Document": "", "Instruction": "",
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "render.go: execute:", err)
			os.Exit(1)
		}
		out = append(out, b.String())
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
