// Command fileserver serves /www over HTTP on :8080. Tests build it into a
// FROM scratch image: no shell, tar or rm, so only the sync agent can
// deliver files there.
package main

import (
	"log"
	"net/http"
)

func main() {
	log.Fatal(http.ListenAndServe(":8080", http.FileServer(http.Dir("/www"))))
}
