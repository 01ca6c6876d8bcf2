package initramfs

import (
	"encoding/json"
	"strings"
	"testing"
)

// Every stage logs its time as JSON, in boot order, on the monotonic
// clock: from the early mounts (whose start is where the Go runtime's ends)
// to the switch stage just before the exec of the root's init.
func TestStageTimesLogged(t *testing.T) {
	f := good(t)
	run(t, f)
	var got []string
	var last float64
	for _, m := range f.messages {
		js, ok := strings.CutPrefix(m, stageTimePrefix)
		if !ok {
			continue
		}
		var st StageTime
		if err := json.Unmarshal([]byte(js), &st); err != nil {
			t.Fatalf("%q: %v", m, err)
		}
		if st.StartMS <= 0 || st.MS < 0 || st.StartMS+1e-6 < last {
			t.Errorf("stage %s: start %v ms, %v ms long, after a stage that ended at %v ms", st.Stage, st.StartMS, st.MS, last)
		}
		last = st.StartMS + st.MS
		got = append(got, st.Stage)
	}
	want := []string{StageEarly, StageModules, StageTPM, StageRoot, StageVerify, StageMount, StageState, StageSwitch}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("stage times for %v, want %v", got, want)
	}
}
