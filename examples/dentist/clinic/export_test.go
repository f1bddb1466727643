package clinic

// Defect plants a bug in the machine, for the tests that show the
// simulator catches it. The switch is unexported: only tests can plant.
type Defect = defect

// The plantable defects.
const (
	NoDefect                    = noDefect
	DefectDuplicateSuccessFlips = defectDuplicateSuccessFlips
	DefectRestoreForgetsRelease = defectRestoreForgetsRelease
	DefectMutateBeforeError     = defectMutateBeforeError
)

// NewDefectiveKind returns the clinic kind with defect d planted.
func NewDefectiveKind(d Defect, opts Options) (*Kind, error) {
	return newKind(Machine{defect: d}, opts)
}
