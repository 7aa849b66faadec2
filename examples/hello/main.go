// Command hello is loop's example service: an HTTP server whose image is
// FROM scratch with this binary compiled on the host by a local_resource.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
)

// message is what a developer edits to see the inner loop at work.
const message = "hello from loop"

func main() {
	addr := ":8000"
	if p := os.Getenv("PORT"); p != "" {
		addr = ":" + p
	}
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, message)
	})
	log.Printf("serving on %s", addr)
	log.Fatal(http.ListenAndServe(addr, nil))
}
