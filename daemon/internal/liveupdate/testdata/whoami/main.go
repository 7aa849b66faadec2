// Command whoami serves, on :8080, its PID and the SHA-256 of its own
// executable, so tests can tell a restarted process and a replaced binary
// apart. Tests build it into a FROM scratch image. It exits on SIGTERM with
// code 0, as a well-behaved server does.
package main

import (
	"crypto/sha256"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	exe, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		log.Fatal(err)
	}
	me := fmt.Sprintf("pid %d exe %x\n", os.Getpid(), sha256.Sum256(exe))
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, me) })
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	go func() {
		<-stop
		fmt.Println("whoami: stopping")
		os.Exit(0)
	}()
	fmt.Print("whoami: serving ", me)
	log.Fatal(http.ListenAndServe(":8080", nil))
}
