package tpm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The three TPM 2.0 commands the init needs (TPM 2.0 Library, Part 3),
// encoded here rather than with go-tpm, whose import graph (RSA, ECDSA,
// net, the legacy TPM 1.2 API) would double the size of PID 1.

// Transport sends one command to a TPM and returns its response. A Linux
// TPM device (OpenDevice), go-tpm's transports and its simulator fit.
type Transport interface {
	Send(command []byte) ([]byte, error)
}

// Device is an open TPM.
type Device interface {
	Transport
	Close() error
}

// AlgID is a TPM_ALG_ID.
type AlgID uint16

// Hash algorithms of the PCR banks.
const (
	AlgSHA1   AlgID = 0x0004
	AlgSHA256 AlgID = 0x000B
	AlgSHA384 AlgID = 0x000C
	AlgSHA512 AlgID = 0x000D
)

const (
	tagNoSessions   = 0x8001 // TPM_ST_NO_SESSIONS
	tagSessions     = 0x8002 // TPM_ST_SESSIONS
	ccPCRExtend     = 0x0182
	ccPCRRead       = 0x017E
	ccGetCapability = 0x017A
	capPCRs         = 0x00000005 // TPM_CAP_PCRS
	rsPW            = 0x40000009 // TPM_RS_PW: the password session
	headerSize      = 10         // tag, size, command code / response code
	pcrSelectBytes  = 3          // PCR 0..23, as PC Client TPMs have
	maxResponse     = 4096       // TPM2_MAX_COMMAND_SIZE of common TPMs
)

// execute sends a command and returns the response's parameter area (after
// the header; after the parameter size for commands with sessions).
func execute(t Transport, name string, tag uint16, cc uint32, body []byte) ([]byte, error) {
	cmd := binary.BigEndian.AppendUint16(nil, tag)
	cmd = binary.BigEndian.AppendUint32(cmd, uint32(headerSize+len(body)))
	cmd = binary.BigEndian.AppendUint32(cmd, cc)
	rsp, err := t.Send(append(cmd, body...))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(rsp) < headerSize {
		return nil, fmt.Errorf("%s: response of %d bytes, shorter than its header", name, len(rsp))
	}
	if size := binary.BigEndian.Uint32(rsp[2:]); int64(size) != int64(len(rsp)) {
		return nil, fmt.Errorf("%s: response says %d bytes, got %d", name, size, len(rsp))
	}
	if rc := binary.BigEndian.Uint32(rsp[6:]); rc != 0 {
		return nil, &ResponseError{Command: name, Code: rc}
	}
	params := rsp[headerSize:]
	if binary.BigEndian.Uint16(rsp) == tagSessions {
		r := reader{b: params}
		n := r.u32()
		params = r.bytes(int(n))
		if r.err != nil {
			return nil, fmt.Errorf("%s: response: %w", name, r.err)
		}
	}
	return params, nil
}

// ResponseError is a TPM's error response code.
type ResponseError struct {
	Command string
	Code    uint32
}

func (e *ResponseError) Error() string {
	what := ""
	switch e.Code {
	case 0x101:
		what = " (TPM_RC_FAILURE: the TPM is in failure mode)"
	case 0x100:
		what = " (TPM_RC_INITIALIZE: the TPM was not started)"
	case 0x907:
		what = " (TPM_RC_LOCALITY: PCR not extendable from this locality)"
	}
	return fmt.Sprintf("%s: TPM response code %#x%s", e.Command, e.Code, what)
}

// PCRSelection is one bank's selected PCRs (a TPMS_PCR_SELECTION).
type PCRSelection struct {
	Hash   AlgID
	Select []byte // bit n of byte n/8 selects PCR n
}

// getPCRAllocation returns the TPM's PCR banks and which PCRs each has
// allocated (TPM2_GetCapability(TPM_CAP_PCRS)).
func getPCRAllocation(t Transport) ([]PCRSelection, error) {
	body := binary.BigEndian.AppendUint32(nil, capPCRs)
	body = binary.BigEndian.AppendUint32(body, 0) // property
	body = binary.BigEndian.AppendUint32(body, 1) // count: the whole list
	params, err := execute(t, "TPM2_GetCapability(PCRs)", tagNoSessions, ccGetCapability, body)
	if err != nil {
		return nil, err
	}
	r := reader{b: params}
	r.u8() // moreData: TPM_CAP_PCRS fits in one response
	if c := r.u32(); r.err == nil && c != capPCRs {
		return nil, fmt.Errorf("TPM2_GetCapability(PCRs): response for capability %#x", c)
	}
	sel := r.pcrSelections()
	if r.err != nil {
		return nil, fmt.Errorf("TPM2_GetCapability(PCRs): %w", r.err)
	}
	return sel, nil
}

// pcrExtend extends pcr in each bank (TPM2_PCR_Extend, empty password).
func pcrExtend(t Transport, pcr int, digests []Digest) error {
	body := binary.BigEndian.AppendUint32(nil, uint32(pcr))
	body = binary.BigEndian.AppendUint32(body, 9) // authorization area size
	body = binary.BigEndian.AppendUint32(body, rsPW)
	body = binary.BigEndian.AppendUint16(body, 0) // nonce
	body = append(body, 0)                        // session attributes
	body = binary.BigEndian.AppendUint16(body, 0) // password
	body = binary.BigEndian.AppendUint32(body, uint32(len(digests)))
	for _, d := range digests {
		body = binary.BigEndian.AppendUint16(body, uint16(d.Bank.Alg))
		body = append(body, d.Value...)
	}
	_, err := execute(t, "TPM2_PCR_Extend", tagSessions, ccPCRExtend, body)
	return err
}

// pcrRead reads one PCR of one bank (TPM2_PCR_Read).
func pcrRead(t Transport, pcr int, alg AlgID) ([]byte, error) {
	if pcr < 0 || pcr >= 8*pcrSelectBytes {
		return nil, fmt.Errorf("TPM2_PCR_Read: PCR %d out of range", pcr)
	}
	sel := make([]byte, pcrSelectBytes)
	sel[pcr/8] = 1 << (pcr % 8)
	body := binary.BigEndian.AppendUint32(nil, 1)
	body = binary.BigEndian.AppendUint16(body, uint16(alg))
	body = append(append(body, pcrSelectBytes), sel...)
	params, err := execute(t, "TPM2_PCR_Read", tagNoSessions, ccPCRRead, body)
	if err != nil {
		return nil, err
	}
	r := reader{b: params}
	r.u32() // pcrUpdateCounter
	r.pcrSelections()
	n := r.u32()
	if r.err == nil && n != 1 {
		return nil, fmt.Errorf("TPM2_PCR_Read: %d values for one PCR", n)
	}
	value := r.bytes(int(r.u16()))
	if r.err != nil {
		return nil, fmt.Errorf("TPM2_PCR_Read: %w", r.err)
	}
	return value, nil
}

// reader decodes big-endian TPM structures; the first short read sets err
// and every later read returns zeros.
type reader struct {
	b   []byte
	err error
}

var errShort = errors.New("response truncated")

func (r *reader) bytes(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b) {
		r.err = errShort
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u8() uint8 {
	if b := r.bytes(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if b := r.bytes(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if b := r.bytes(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

// pcrSelections reads a TPML_PCR_SELECTION.
func (r *reader) pcrSelections() []PCRSelection {
	n := r.u32()
	if r.err == nil && n > 16 { // TPM has at most a handful of banks
		r.err = fmt.Errorf("%d PCR banks", n)
	}
	var out []PCRSelection
	for i := uint32(0); i < n && r.err == nil; i++ {
		hash := AlgID(r.u16())
		sel := r.bytes(int(r.u8()))
		out = append(out, PCRSelection{Hash: hash, Select: sel})
	}
	return out
}
