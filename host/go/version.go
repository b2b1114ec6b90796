package credlock

// #include "credlock.h"
import "C"

// Version is the version of the credlock library this program links, the same for the CLI
// and every binding (`credlock --version` prints it too).
func Version() string { return C.GoString(C.credlock_version()) }

// ComponentSHA256 is the hex SHA-256 of the WebAssembly component the linked library
// embeds: with Version, what a fleet checks it runs.
func ComponentSHA256() string { return C.GoString(C.credlock_component_sha256()) }
