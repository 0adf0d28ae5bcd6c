// A Go program (CGO_ENABLED=0, static): goroutines, a channel ping-pong,
// time.Sleep, a time.Timer and time.After, runtime.GOMAXPROCS(4), a
// sync.WaitGroup. Expected output is what the same binary prints natively.
// BUILD: go
// CPUS: 4
// STDOUT: GOMAXPROCS 4
// STDOUT: ping-pong after 1000 rounds: 1000
// STDOUT: 8 goroutines: [1 4 9 16 25 36 49 64]
// STDOUT: timer fired first
// STDOUT: timer waited at least 20ms: true
// STDOUT: time.After results: [after 10ms after 20ms after 30ms]
package main

import (
	"fmt"
	"runtime"
	"sort"
	"sync"
	"time"
)

func pingPong(rounds int) int {
	ping, pong := make(chan int), make(chan int)
	go func() {
		for v := range ping {
			pong <- v + 1
		}
		close(pong)
	}()
	value := 0
	for i := 0; i < rounds; i++ {
		ping <- value
		value = <-pong
	}
	close(ping)
	return value
}

func main() {
	runtime.GOMAXPROCS(4)
	fmt.Printf("GOMAXPROCS %d\n", runtime.GOMAXPROCS(0))

	fmt.Printf("ping-pong after 1000 rounds: %d\n", pingPong(1000))

	var wg sync.WaitGroup
	var mu sync.Mutex
	squares := []int{}
	for i := 1; i <= 8; i++ {
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			time.Sleep(time.Duration(n) * time.Millisecond)
			mu.Lock()
			squares = append(squares, n*n)
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	sort.Ints(squares)
	fmt.Printf("8 goroutines: %v\n", squares)

	timer := time.NewTimer(20 * time.Millisecond)
	start := time.Now()
	select {
	case <-timer.C:
		fmt.Println("timer fired first")
	case <-time.After(2 * time.Second):
		fmt.Println("time.After fired first")
	}
	elapsed := time.Since(start)
	fmt.Printf("timer waited at least 20ms: %v\n", elapsed >= 20*time.Millisecond)

	results := make(chan string, 3)
	for _, d := range []int{30, 10, 20} {
		go func(ms int) {
			<-time.After(time.Duration(ms) * time.Millisecond)
			results <- fmt.Sprintf("after %dms", ms)
		}(d)
	}
	got := []string{<-results, <-results, <-results}
	sort.Strings(got)
	fmt.Printf("time.After results: %v\n", got)
}
