//! Host benchmarks, Ferrite beside its peers in one run (`make bench` prints them): the page
//! allocator against `buddy_system_allocator`'s `FrameAllocator` over the same 256 MiB of frames.
//! Each figure is the best of several rounds, in nanoseconds per alloc+free pair.

use std::hint::black_box;
use std::time::Instant;

use buddy_system_allocator::FrameAllocator;
use ferrite::mm::addr::{Pfn, PhysAddr, PhysRange, PAGE_SHIFT};
use ferrite::mm::gfp::Gfp;
use ferrite::mm::page::{MemMap, Page, PAGES_PER_SECTION};
use ferrite::mm::page_alloc::{GlobalPages, PageAllocator, PhysMem};
use ferrite::mm::zone::ZoneLimits;

/// Page contents for the allocator: a real buffer, though these benchmarks never touch it.
struct Ram(Vec<u8>, u64);

// SAFETY: every frame of the managed range maps into the buffer.
unsafe impl PhysMem for Ram {
    fn page_ptr(&self, pfn: u64) -> *mut u8 {
        self.0
            .as_ptr()
            .wrapping_add(((pfn - self.1) << PAGE_SHIFT) as usize) as *mut u8
    }
}

const BASE: u64 = 0x4000_0000;
const SIZE: u64 = 256 << 20;
const PAIRS: u64 = 2_000_000;
const ROUNDS: usize = 5;

fn ferrite_allocator() -> PageAllocator<Ram> {
    let memory = [PhysRange::new(PhysAddr::new(BASE), SIZE)];
    let mut map = MemMap::new((BASE + SIZE) >> PAGE_SHIFT);
    for sec in MemMap::sections_of(
        Pfn::new(BASE >> PAGE_SHIFT),
        Pfn::new((BASE + SIZE) >> PAGE_SHIFT),
    ) {
        let pages: &'static mut [Page] = vec![Page::new(0, 0); PAGES_PER_SECTION as usize].leak();
        // SAFETY: a leaked array of a section's length, used by this map only.
        unsafe { map.populate(sec, pages.as_mut_ptr()) };
    }
    let ram = Ram(vec![0; SIZE as usize], BASE >> PAGE_SHIFT);
    let limits = ZoneLimits {
        dma_end: BASE + SIZE,
        dma32_end: BASE + SIZE,
    };
    let mut a = PageAllocator::new(ram, map, &memory, limits);
    a.release(&memory, &memory);
    a.setup_watermarks();
    a
}

fn best(mut f: impl FnMut() -> f64) -> f64 {
    (0..ROUNDS).map(|_| f()).fold(f64::INFINITY, f64::min)
}

fn main() {
    let mut results: Vec<(String, f64)> = Vec::new();
    let global: GlobalPages<Ram> = GlobalPages::new();
    global.install(ferrite_allocator());
    let mut frames: FrameAllocator<32> = FrameAllocator::new();
    frames.add_frame(
        (BASE >> PAGE_SHIFT) as usize,
        ((BASE + SIZE) >> PAGE_SHIFT) as usize,
    );

    for order in [0u8, 3] {
        let ns = best(|| {
            let t = Instant::now();
            for _ in 0..PAIRS {
                let pa = global
                    .alloc_pages(Gfp::KERNEL, order)
                    .expect("ferrite alloc");
                global
                    .free_pages(black_box(pa), order)
                    .expect("ferrite free");
            }
            t.elapsed().as_nanos() as f64 / PAIRS as f64
        });
        let suffix = if order == 0 {
            String::new()
        } else {
            format!("_o{order}")
        };
        results.push((format!("host.page.ferrite{suffix}"), ns));
        let count = 1usize << order;
        let ns = best(|| {
            let t = Instant::now();
            for _ in 0..PAIRS {
                let frame = frames.alloc(count).expect("baseline alloc");
                frames.dealloc(black_box(frame), count);
            }
            t.elapsed().as_nanos() as f64 / PAIRS as f64
        });
        results.push((format!("host.page.buddy_system_allocator{suffix}"), ns));
    }
    println!("{:<40} {:>10}  unit", "benchmark", "value");
    for (name, ns) in &results {
        println!("{name:<40} {ns:>10.1}  ns per alloc+free pair");
    }
    for (name, ns) in &results {
        println!("bench {name} {ns:.1} ns");
    }
}
