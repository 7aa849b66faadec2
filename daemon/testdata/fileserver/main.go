// Command fileserver serves a directory over HTTP on :8080; tests put it in a
// FROM scratch image to prove live updates need nothing from the image.
package main

import (
	"log"
	"net/http"
	"os"
)

func main() {
	log.Fatal(http.ListenAndServe(":8080", http.FileServer(http.Dir(os.Args[1]))))
}
