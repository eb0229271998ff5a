// Command gocheck checks Custody's notes, checkpoints and Merkle proofs with Go's
// golang.org/x/mod/sumdb/note and golang.org/x/mod/sumdb/tlog, an implementation nobody on
// the Custody project wrote.
//
// It reads one JSON array of checks on stdin and writes one JSON array of results (same
// order) on stdout, so a test run costs one process whatever the number of checks:
//
//	{"type":"note","vkeys":[...],"cosig_vkeys":[...],"note":"..."}   (or "note_b64" for raw bytes)
//	    -> {"ok","error","error_type","text","sigs":[{"name","hash"}],"unverified"}
//	{"type":"record","proof":[b64...],"size":n,"root":b64,"index":i,"leaf":b64}
//	    -> tlog.CheckRecord(proof, size, root, index, tlog.RecordHash(leaf))
//	{"type":"tree","proof":[b64...],"size":n,"root":b64,"old_size":m,"old_root":b64}
//	    -> tlog.CheckTree(proof, size, root, old_size, old_root)
//	{"type":"sign","skey":"PRIVATE+KEY+...","text":"..."}  -> {"ok","note"}
//	{"type":"generate","name":"..."}                       -> {"ok","skey","vkey"}
//
// Build in GOPATH mode against Debian's golang-golang-x-mod-dev:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o gocheck main.go
package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type check struct {
	Type       string   `json:"type"`
	Vkeys      []string `json:"vkeys"`
	CosigVkeys []string `json:"cosig_vkeys"`
	Note       string   `json:"note"`
	NoteB64    string   `json:"note_b64"`
	Proof      []string `json:"proof"`
	Size       int64    `json:"size"`
	Root       string   `json:"root"`
	Index      int64    `json:"index"`
	Leaf       string   `json:"leaf"`
	OldSize    int64    `json:"old_size"`
	OldRoot    string   `json:"old_root"`
	Skey       string   `json:"skey"`
	Text       string   `json:"text"`
	Name       string   `json:"name"`
}

type sig struct {
	Name string `json:"name"`
	Hash string `json:"hash"`
}

type result struct {
	OK         bool   `json:"ok"`
	Error      string `json:"error,omitempty"`
	ErrorType  string `json:"error_type,omitempty"`
	Text       string `json:"text,omitempty"`
	Sigs       []sig  `json:"sigs,omitempty"`
	Unverified int    `json:"unverified,omitempty"`
	Note       string `json:"note,omitempty"`
	Skey       string `json:"skey,omitempty"`
	Vkey       string `json:"vkey,omitempty"`
}

func fail(err error) result {
	return result{OK: false, Error: err.Error(), ErrorType: fmt.Sprintf("%T", err)}
}

func hash(s string) (tlog.Hash, error) {
	var h tlog.Hash
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return h, err
	}
	if len(b) != tlog.HashSize {
		return h, fmt.Errorf("hash is %d bytes, want %d", len(b), tlog.HashSize)
	}
	copy(h[:], b)
	return h, nil
}

func hashes(list []string) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, 0, len(list))
	for _, s := range list {
		h, err := hash(s)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}

// cosigVerifier is a minimal tlog-cosignature/v1 (Ed25519, type 0x04) note.Verifier,
// written from the C2SP spec; x/mod 0.7 only knows type 0x01. Note.Open does the framing.
type cosigVerifier struct {
	name string
	hash uint32
	key  ed25519.PublicKey
}

func (v *cosigVerifier) Name() string    { return v.name }
func (v *cosigVerifier) KeyHash() uint32 { return v.hash }
func (v *cosigVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig)
	if t > 1<<63-1 {
		return false
	}
	m := []byte("cosignature/v1\ntime " + strconv.FormatUint(t, 10) + "\n")
	m = append(m, msg...)
	return ed25519.Verify(v.key, m, sig[8:])
}

func newCosigVerifier(vkey string) (note.Verifier, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return nil, errors.New("malformed cosignature vkey")
	}
	name, hash16, key64 := parts[0], parts[1], parts[2]
	h, err1 := strconv.ParseUint(hash16, 16, 32)
	key, err2 := base64.StdEncoding.DecodeString(key64)
	if len(hash16) != 8 || err1 != nil || err2 != nil || len(key) != 33 || key[0] != 4 {
		return nil, errors.New("malformed cosignature vkey")
	}
	sum := sha256.Sum256(append([]byte(name+"\n"), key...))
	if binary.BigEndian.Uint32(sum[:]) != uint32(h) {
		return nil, errors.New("cosignature vkey hash mismatch")
	}
	return &cosigVerifier{name: name, hash: uint32(h), key: ed25519.PublicKey(key[1:])}, nil
}

func checkNote(c check) result {
	var vs []note.Verifier
	for _, k := range c.Vkeys {
		v, err := note.NewVerifier(k)
		if err != nil {
			return fail(fmt.Errorf("vkey %q: %w", k, err))
		}
		vs = append(vs, v)
	}
	for _, k := range c.CosigVkeys {
		v, err := newCosigVerifier(k)
		if err != nil {
			return fail(fmt.Errorf("cosig vkey %q: %w", k, err))
		}
		vs = append(vs, v)
	}
	msg := []byte(c.Note)
	if c.NoteB64 != "" {
		b, err := base64.StdEncoding.DecodeString(c.NoteB64)
		if err != nil {
			return fail(err)
		}
		msg = b
	}
	n, err := note.Open(msg, note.VerifierList(vs...))
	if err != nil {
		return fail(err)
	}
	r := result{OK: true, Text: n.Text, Unverified: len(n.UnverifiedSigs)}
	for _, s := range n.Sigs {
		r.Sigs = append(r.Sigs, sig{Name: s.Name, Hash: fmt.Sprintf("%08x", s.Hash)})
	}
	return r
}

func checkRecord(c check) result {
	p, err := hashes(c.Proof)
	if err != nil {
		return fail(err)
	}
	root, err := hash(c.Root)
	if err != nil {
		return fail(err)
	}
	leaf, err := base64.StdEncoding.DecodeString(c.Leaf)
	if err != nil {
		return fail(err)
	}
	if err := tlog.CheckRecord(tlog.RecordProof(p), c.Size, root, c.Index, tlog.RecordHash(leaf)); err != nil {
		return fail(err)
	}
	return result{OK: true}
}

func checkTree(c check) result {
	p, err := hashes(c.Proof)
	if err != nil {
		return fail(err)
	}
	root, err := hash(c.Root)
	if err != nil {
		return fail(err)
	}
	oldRoot, err := hash(c.OldRoot)
	if err != nil {
		return fail(err)
	}
	// Argument order is (proof, new size, new root, old size, old root).
	if err := tlog.CheckTree(tlog.TreeProof(p), c.Size, root, c.OldSize, oldRoot); err != nil {
		return fail(err)
	}
	return result{OK: true}
}

func sign(c check) result {
	s, err := note.NewSigner(c.Skey)
	if err != nil {
		return fail(err)
	}
	msg, err := note.Sign(&note.Note{Text: c.Text}, s)
	if err != nil {
		return fail(err)
	}
	return result{OK: true, Note: string(msg)}
}

func generate(c check) result {
	skey, vkey, err := note.GenerateKey(rand.Reader, c.Name)
	if err != nil {
		return fail(err)
	}
	return result{OK: true, Skey: skey, Vkey: vkey}
}

func run(c check) (r result) {
	// A panic in one check (Go's tlog panics on some impossible inputs) must not lose the batch.
	defer func() {
		if p := recover(); p != nil {
			r = result{OK: false, Error: fmt.Sprint("panic: ", p), ErrorType: "panic"}
		}
	}()
	switch c.Type {
	case "note":
		return checkNote(c)
	case "record":
		return checkRecord(c)
	case "tree":
		return checkTree(c)
	case "sign":
		return sign(c)
	case "generate":
		return generate(c)
	}
	return fail(fmt.Errorf("unknown check type %q", c.Type))
}

func main() {
	var checks []check
	dec := json.NewDecoder(os.Stdin)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&checks); err != nil {
		fmt.Fprintln(os.Stderr, "gocheck: reading checks:", err)
		os.Exit(2)
	}
	results := make([]result, len(checks))
	for i, c := range checks {
		results[i] = run(c)
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		fmt.Fprintln(os.Stderr, "gocheck: writing results:", err)
		os.Exit(2)
	}
}
