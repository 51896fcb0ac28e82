//! `run=memstress`: fills a lazily mapped region with a pattern derived from each word's address,
//! the pass and a seed, verifies every byte, prints the counters, and ends with status 0 only if
//! every byte verified. Options: `memstress.size=` (bytes with K/M/G, or a multiple of RAM such as
//! `2x`), `memstress.pattern=seq|random`, `memstress.passes=N`, `memstress.seed=N`. A region
//! larger than memory (and swap) is refused before it is filled. An application on the public
//! API; its workload logic (sizes, patterns, page orders) is portable and tested on the host.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate alloc;

#[cfg(target_os = "none")]
use ferrite::log::{error, info};
#[cfg(target_os = "none")]
use ferrite::mem::{Prot, Region};
#[cfg(target_os = "none")]
use ferrite::{env, mem, print, println, proc, AppOption, ExitStatus};

/// The options memstress takes, checked by the boot before `main` runs.
#[cfg(target_os = "none")]
static OPTIONS: &[AppOption] = &[
        AppOption {
            key: "size",
            accepts: "a size in bytes with K, M or G (64M) or a multiple of RAM (2x), above 0 and at most 128 TiB",
            valid: |v| parse_size(v, 1).is_some_and(|s| s > 0 && s <= MAX_SIZE),
        },
        AppOption {
            key: "pattern",
            accepts: "seq or random",
            valid: |v| matches!(v, "seq" | "random"),
        },
        AppOption {
            key: "passes",
            accepts: "a whole number of passes from 1 to 1000000",
            valid: |v| v.parse::<u64>().is_ok_and(|n| (1..=1_000_000).contains(&n)),
        },
        AppOption {
            key: "seed",
            accepts: "a whole number from 0 to 18446744073709551615",
            valid: |v| v.parse::<u64>().is_ok(),
        },
];

/// The largest region memstress asks for: the application's half of the address space (47 bits).
pub const MAX_SIZE: u64 = 1 << 47;

/// `64M`, `1G`, `4096`, or `2x` (times RAM).
pub fn parse_size(value: &str, ram: u64) -> Option<u64> {
    let v = value.trim();
    if let Some(times) = v.strip_suffix('x') {
        let f: u64 = times.parse().ok()?;
        return ram.checked_mul(f);
    }
    let (digits, shift) = match v.chars().last()? {
        'K' | 'k' => (&v[..v.len() - 1], 10),
        'M' | 'm' => (&v[..v.len() - 1], 20),
        'G' | 'g' => (&v[..v.len() - 1], 30),
        _ => (v, 0),
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// The value of the word at `addr` in `pass` (a 64-bit mix, so neighbouring words differ).
#[inline]
pub fn pattern(addr: u64, pass: u64, seed: u64) -> u64 {
    let mut z = addr ^ pass.rotate_left(48) ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The order pages are visited in: in sequence, or a pseudo-random permutation (a full-period
/// linear congruential walk over the page numbers).
pub fn page_order(pages: u64, random: bool, seed: u64) -> impl Iterator<Item = u64> {
    let m = pages.next_power_of_two().max(1);
    let mut x = seed & (m - 1);
    let mut left = m;
    core::iter::from_fn(move || {
        while left > 0 {
            left -= 1;
            let out = if random { x } else { m - 1 - left };
            // LCG with a = 5 (mod 4 == 1) and odd c has full period over a power of two.
            x = x.wrapping_mul(5).wrapping_add(2 * seed + 1) & (m - 1);
            if out < pages {
                return Some(out);
            }
        }
        None
    })
}

#[cfg(target_os = "none")]
#[ferrite::main(name = "memstress", options = OPTIONS)]
fn main() -> ExitStatus {
    // The boot checked every option against OPTIONS before `main` started.
    let ram = mem::ram_bytes();
    let size = env::option("size")
        // A multiple of RAM that overflows is too big, never the default size.
        .map_or(ram / 4, |v| parse_size(v, ram).unwrap_or(u64::MAX))
        .min(MAX_SIZE)
        .next_multiple_of(4096);
    let random = env::option("pattern") == Some("random");
    let passes: u64 = env::option("passes").map_or(1, |v| v.parse().unwrap_or(1));
    let seed: u64 = env::option("seed").map_or(1, |v| v.parse().unwrap_or(1));
    let swap_before = mem::swap_totals();
    // Like Linux's heuristic overcommit: a region larger than RAM and swap together could
    // never be filled, so it is refused at once rather than after filling both.
    let limit = ram + swap_before.0;
    if size > limit {
        error!(
            "memstress: memstress.size={} ({} MiB) is more than RAM and swap together ({} MiB + {} MiB): it could never be filled",
            env::option("size").unwrap_or(""),
            size >> 20,
            ram >> 20,
            swap_before.0 >> 20
        );
        return ExitStatus::Failure;
    }
    let mut region = match Region::map(size, Prot::RW, "memstress") {
        Ok(r) => r,
        Err(e) => {
            error!("memstress: cannot map {size:#x} bytes: {e}");
            return ExitStatus::Failure;
        }
    };
    let base = region.start();
    info!(
        "memstress: {} MiB at {base:#x}, {} pattern, {passes} pass(es), seed {seed}",
        size >> 20,
        if random { "random" } else { "sequential" }
    );
    let pages = size / 4096;
    let mut bad = 0u64;
    for pass in 0..passes {
        for p in page_order(pages, random, seed ^ pass) {
            let page = base + p * 4096;
            for w in 0..512 {
                let a = page + w * 8;
                // Faults fill the region in.
                region.write_u64(a - base, pattern(a, pass, seed));
            }
        }
        for p in page_order(pages, random, seed ^ pass ^ 0x5555) {
            let page = base + p * 4096;
            for w in 0..512 {
                let a = page + w * 8;
                let v = region.read_u64(a - base);
                if v != pattern(a, pass, seed) {
                    if bad < 8 {
                        error!(
                            "memstress: {a:#x} holds {v:#018x}, expected {:#018x} (pass {pass})",
                            pattern(a, pass, seed)
                        );
                    }
                    bad += 1;
                }
            }
        }
        info!("memstress: pass {pass} done, {bad} bad word(s) so far");
    }
    drop(region);
    println!("/proc/vmstat:");
    print!("{}", proc::vmstat());
    println!("/proc/interrupts:");
    print!("{}", proc::interrupts());
    // munmap gives back every slot the region's pages held, on swap or as swap copies (slots
    // a failed write retired leave the total, not the free count).
    let swap_after = mem::swap_totals();
    let in_use = |(total, free): (u64, u64)| (total - free) >> 10;
    if in_use(swap_after) != in_use(swap_before) {
        error!(
            "memstress: {} KiB of swap in use after munmap, {} KiB before the run",
            in_use(swap_after),
            in_use(swap_before)
        );
        return ExitStatus::Failure;
    }
    if bad == 0 {
        info!("memstress: every byte of {} MiB verified", size >> 20);
        ExitStatus::Success
    } else {
        error!("memstress: {bad} word(s) did not verify");
        ExitStatus::Failure
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn sizes_parse_like_the_command_line_says() {
        assert_eq!(parse_size("64M", 0), Some(64 << 20));
        assert_eq!(parse_size("1g", 0), Some(1 << 30));
        assert_eq!(parse_size("4096", 0), Some(4096));
        assert_eq!(parse_size("2x", 1 << 30), Some(2 << 30));
        assert_eq!(parse_size("x", 1), None);
        assert_eq!(parse_size("12Q", 1), None);
    }

    #[test]
    fn random_order_visits_every_page_once() {
        for pages in [1u64, 7, 64, 1000] {
            let mut seen: Vec<u64> = page_order(pages, true, 12345).collect();
            assert_eq!(seen.len() as u64, pages);
            seen.sort();
            assert_eq!(seen, (0..pages).collect::<Vec<_>>());
        }
        assert_eq!(
            page_order(5, false, 9).collect::<Vec<_>>(),
            alloc::vec![0, 1, 2, 3, 4]
        );
        assert_ne!(pattern(0x1000, 0, 1), pattern(0x1008, 0, 1));
        assert_ne!(pattern(0x1000, 0, 1), pattern(0x1000, 1, 1));
    }
}
