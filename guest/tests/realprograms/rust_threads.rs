// A Rust std program: four threads, an mpsc channel, Arc<Mutex<..>>,
// thread::sleep and a file read through --fs (fsroot/numbers.txt as /numbers.txt;
// natively: rust_threads fsroot/numbers.txt).
// Output is sorted so thread order does not matter; expected output is what
// the same binary prints natively.
// BUILD: rustc
// FS: fsroot
// ARGS: /numbers.txt
// CPUS: 1 4
// STDOUT: read 3 lines: alpha=3 beta=5 gamma=7
// STDOUT: worker 0 sent 15
// STDOUT: worker 1 sent 40
// STDOUT: worker 2 sent 65
// STDOUT: worker 3 sent 90
// STDOUT: shared total 210, channel total 210, workers checked in: [0, 1, 2, 3]
// STDOUT: file total 15
use std::fs;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

fn main() {
    let path = std::env::args().nth(1).expect("usage: rust_threads FILE");
    let text = fs::read_to_string(&path).expect("read the numbers file");
    let entries: Vec<(String, u64)> = text
        .lines()
        .map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next().unwrap().to_string();
            (name, words.next().unwrap().parse().unwrap())
        })
        .collect();
    let shown: Vec<String> = entries.iter().map(|(n, v)| format!("{}={}", n, v)).collect();
    println!("read {} lines: {}", entries.len(), shown.join(" "));

    let total = Arc::new(Mutex::new(0u64));
    let checked_in = Arc::new(Mutex::new(Vec::new()));
    let (sender, receiver) = mpsc::channel();
    let mut handles = Vec::new();
    for id in 0..4u64 {
        let sender = sender.clone();
        let total = Arc::clone(&total);
        let checked_in = Arc::clone(&checked_in);
        handles.push(thread::spawn(move || {
            // Each worker sums its own slice of 1..=20 (five numbers), sleeping
            // between steps so the threads interleave.
            let mut sum = 0;
            for k in (id * 5 + 1)..=(id * 5 + 5) {
                sum += k;
                *total.lock().unwrap() += k;
                thread::sleep(Duration::from_millis(1 + id));
            }
            checked_in.lock().unwrap().push(id);
            sender.send((id, sum)).unwrap();
        }));
    }
    drop(sender);
    let mut results: Vec<(u64, u64)> = receiver.iter().collect();
    for handle in handles {
        handle.join().unwrap();
    }
    results.sort();
    for (id, sum) in &results {
        println!("worker {} sent {}", id, sum);
    }
    let mut ids = checked_in.lock().unwrap().clone();
    ids.sort();
    let sent: u64 = results.iter().map(|(_, s)| s).sum();
    println!("shared total {}, channel total {}, workers checked in: {:?}", *total.lock().unwrap(), sent, ids);
    println!("file total {}", entries.iter().map(|(_, v)| v).sum::<u64>());
}
