// Command chat is workerman's best-known demo in goes: a chat room in the
// browser. The page (index.html, embedded) is served on
// http://127.0.0.1:8080/ and talks to the chat WebSocket on :8081, served
// by two worker processes. Nicknames, rooms, join and leave notices, who
// is online, and messages reach every member of a room whichever worker
// holds them: through the cluster (JoinGroup, SendToGroup,
// SendToConnection, GroupCount), over the NATS server the master embeds.
//
//	go run ./examples/chat start
//	open http://127.0.0.1:8080/ in two browser windows
//
// The wire format is one JSON object per WebSocket message; see msg.
package main

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"html/template"
	"net"
	"strconv"
	"unicode/utf8"

	"github.com/goes-project/goes"
	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/protocols/http"
	"github.com/goes-project/goes/protocols/websocket"
)

//go:embed index.html
var page string

// msg is every message, both ways: the page sends join {nick, room}, say
// {text} and here {to}; the server sends welcome {worker, id}, entered
// {room, count}, joined, here and left {nick, id}, msg {nick, id, text}
// and error {text}. Connection ids are strings: JavaScript's numbers hold
// 53 bits, the ids 64.
type msg struct {
	Type   string `json:"type"`
	Nick   string `json:"nick,omitempty"`
	Room   string `json:"room,omitempty"`
	Text   string `json:"text,omitempty"`
	ID     string `json:"id,omitempty"`
	To     string `json:"to,omitempty"`
	Worker *int   `json:"worker,omitempty"`
	Count  *int   `json:"count,omitempty"`
}

// member is a connection that joined a room (its Context).
type member struct{ nick, room string }

func main() {
	web := goes.NewGoer("http://127.0.0.1:8080", nil, "")
	web.Name, web.Count = "web", 1
	ws := websocket.New()
	chat := goes.NewGoer("websocket://127.0.0.1:8081", ws, "")
	chat.Name, chat.Count = "chat", 2
	chat.Cluster = true // the workers reach each other's connections over NATS
	// GroupCount waits for every worker's answer: callbacks on a pool of
	// goroutines, not on the event loop.
	chat.CallbackGoroutines = 16

	tmpl := template.Must(template.New("page").Parse(page))
	web.OnMessage = func(c connections.Connection, _ []byte) {
		if http.RequestOf(c).Path() != "/" {
			http.Respond(c, &http.Response{Status: 404, Body: []byte("not found\n")})
			return
		}
		_, port, _ := net.SplitHostPort(chat.Addr) // the chat listener's, as configured
		var b bytes.Buffer
		tmpl.Execute(&b, port)
		http.Respond(c, &http.Response{ContentType: "text/html; charset=utf-8", Body: b.Bytes()})
	}

	send := func(c connections.Connection, m msg) {
		b, _ := json.Marshal(m)
		c.SendBytes(b, false)
	}
	encode := func(m msg) []byte { b, _ := json.Marshal(m); return b }
	id := func(c connections.Connection) string { return strconv.FormatUint(c.ID(), 10) }
	leave := func(c connections.Connection, m *member) {
		chat.LeaveGroup(c, m.room)
		chat.SendToGroup(m.room, encode(msg{Type: "left", Nick: m.nick, ID: id(c)}), c.ID())
	}
	ws.OnOpen = func(pc protocols.Conn) {
		c := pc.(connections.Connection)
		w := chat.WorkerID()
		send(c, msg{Type: "welcome", Worker: &w, ID: id(c)})
	}
	chat.OnMessage = func(c connections.Connection, data []byte) {
		var in msg
		if json.Unmarshal(data, &in) != nil {
			send(c, msg{Type: "error", Text: "not a JSON message"})
			return
		}
		me, _ := c.Context().(*member)
		switch {
		case in.Type == "join" && valid(in.Nick, 24) && valid(in.Room, 24):
			if me != nil {
				leave(c, me)
			}
			c.SetContext(&member{nick: in.Nick, room: in.Room})
			chat.JoinGroup(c, in.Room)
			// The members answer "joined" with "here": that is how the page
			// learns who is online.
			chat.SendToGroup(in.Room, encode(msg{Type: "joined", Nick: in.Nick, ID: id(c)}))
			n, _ := chat.GroupCount(in.Room) // a lower bound if a worker did not answer
			send(c, msg{Type: "entered", Room: in.Room, Count: &n})
		case in.Type == "here" && me != nil:
			if to, err := strconv.ParseUint(in.To, 10, 64); err == nil {
				chat.SendToConnection(to, encode(msg{Type: "here", Nick: me.nick, ID: id(c)}))
			}
		case in.Type == "say" && me != nil && valid(in.Text, 1000):
			chat.SendToGroup(me.room, encode(msg{Type: "msg", Nick: me.nick, ID: id(c), Text: in.Text}))
		default:
			send(c, msg{Type: "error", Text: "join a room with a nickname (up to 24 characters), then say up to 1000"})
		}
	}
	chat.OnClose = func(c connections.Connection) {
		if me, ok := c.Context().(*member); ok {
			leave(c, me)
		}
	}
	goes.RunAll(web, chat)
}

// valid reports whether s is non-empty and at most n characters.
func valid(s string, n int) bool { return s != "" && utf8.RuneCountInString(s) <= n }
