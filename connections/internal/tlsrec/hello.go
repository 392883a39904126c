package tlsrec

// helloState looks at the start of a connection's input: records of
// type handshake whose fragments begin with a complete ClientHello. When
// it is, end is the end of the record that completes it.
func helloState(in []byte) (h Hello, end int) {
	start := len(in)
	var msg []byte // the handshake fragments' bytes, up to the message header
	need := -1     // the message's length with its header, once known
	got := 0
	for len(in) > 0 {
		if in[0] != 22 { // handshake
			return HelloBad, 0
		}
		if len(in) < recordHeaderLen {
			return HelloMore, 0
		}
		if in[1] != 3 {
			return HelloBad, 0
		}
		n := int(in[3])<<8 | int(in[4])
		if n == 0 || n > 1<<14 {
			return HelloBad, 0
		}
		frag := in[recordHeaderLen:]
		if len(frag) > n {
			frag = frag[:n]
		}
		if need < 0 {
			msg = append(msg, frag[:min(len(frag), 4-len(msg))]...)
			if len(msg) >= 1 && msg[0] != 1 { // client_hello
				return HelloBad, 0
			}
			if len(msg) == 4 {
				need = 4 + (int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3]))
				if need > maxHello {
					return HelloBad, 0
				}
			}
		}
		if len(frag) < n {
			return HelloMore, 0
		}
		got += len(frag)
		in = in[recordHeaderLen+n:]
		if need >= 0 && got >= need {
			return HelloReady, start - len(in)
		}
	}
	return HelloMore, 0
}

// helloFragment is the largest record body of a ClientHello as crypto/tls
// is handed it: crypto/tls's input buffer starts at 576 bytes (a record
// header and bytes.MinRead, in a size class) and keeps the size of the
// largest record it held, so a hello of a few KiB (a post-quantum key
// share is 1,216 bytes) in one record would leave the buffer of every
// connection that large.
const helloFragment = 512

// refragment rewrites the records of in[:end], the ClientHello's (not
// encrypted: the record layer may split a handshake message across
// records, RFC 8446 5.1), as records of at most helloFragment bytes.
func refragment(in []byte, end int) []byte {
	if end <= recordHeaderLen+helloFragment {
		return in
	}
	hdr := in[:3]
	var body []byte
	for p := in[:end]; len(p) > 0; {
		n := int(p[3])<<8 | int(p[4])
		body = append(body, p[recordHeaderLen:recordHeaderLen+n]...)
		p = p[recordHeaderLen+n:]
	}
	out := make([]byte, 0, len(in)+(len(body)/helloFragment+1)*recordHeaderLen)
	for len(body) > 0 {
		k := min(helloFragment, len(body))
		out = append(out, hdr[0], hdr[1], hdr[2], byte(k>>8), byte(k))
		out = append(out, body[:k]...)
		body = body[k:]
	}
	return append(out, in[end:]...)
}
