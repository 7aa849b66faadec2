// Command hello is a tiny static program the build tests put in a FROM
// scratch image.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Printf("hello from scratch, greeting=%s\n", os.Getenv("GREETING"))
}
