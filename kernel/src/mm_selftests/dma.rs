//! Self-tests of ioremap and the DMA API on the machine (virtio-blk exercises real DMA in
//! `drivers::virtio`).

use alloc::vec::Vec;

use crate::addr::{DmaRange, PhysAddr, PAGE_SIZE};
use crate::ktest::TestError;
use crate::mm::dma::{self, dma_alloc_coherent, dma_bit_mask, dma_map_single, DmaDevice, DmaPool};
use crate::mm::gfp::Gfp;
use crate::mm::init::PAGES;
use crate::mm::ioremap::{self, IoremapError};
use crate::mm::layout;
use crate::{kassert, kassert_eq, ktest};

fn fail(what: impl core::fmt::Display) -> TestError {
    TestError::Fail(alloc::format!("{what}"))
}

fn machine() -> Result<&'static crate::machine::Machine, TestError> {
    crate::kernel::get()
        .map(|k| &k.machine)
        .ok_or(fail("kernel state not published"))
}

ktest!(ioremap_gives_working_registers_and_refuses_ram, {
    let m = machine()?;
    let uart = m.uart.as_ref().ok_or(fail("no UART"))?;
    let before = ioremap::mappings();
    let io = ioremap::ioremap(uart.base, uart.size).map_err(fail)?;
    kassert_eq!(
        crate::arch::aarch64::mmu::translate_hw(io.addr()),
        Some(uart.base)
    );
    // The console enabled its transmitter: the control register says so through this mapping.
    match uart.kind {
        crate::machine::UartKind::Pl011 => kassert_eq!(io.read32(0x30) & 0x101, 0x101), // UARTEN, TXE
        crate::machine::UartKind::MiniUart => kassert_eq!(io.read32(0x20) & 0x2, 0x2),  // TX enable
    }
    // The same range again is the same mapping.
    let again = ioremap::ioremap(uart.base, 8).map_err(fail)?;
    kassert_eq!(again.addr(), io.addr());
    // (The console's own mapping of this UART may be the one shared: no new mapping either way.)
    kassert!(ioremap::mappings() <= before + 1 && ioremap::mappings() >= 1);
    drop(again);
    drop(io);
    kassert_eq!(ioremap::mappings(), before);
    if let Some(v) = m.virtio_mmio.first() {
        let io = ioremap::ioremap(v.base, v.size).map_err(fail)?;
        kassert_eq!(io.read32(0), 0x7472_6976); // "virt"
        let version = io.read32(4);
        kassert!(
            version == 1 || version == 2,
            "virtio-mmio version {version}"
        );
    }
    let ram = m.memory[0].base;
    kassert!(matches!(
        ioremap::ioremap(ram, 4096),
        Err(IoremapError::Ram { .. })
    ));
    kassert!(matches!(
        ioremap::ioremap(uart.base, 0),
        Err(IoremapError::ZeroSize)
    ));
    Ok(())
});

/// A device that reaches only the first `reach` bytes of RAM, at bus address 0.
fn test_device(reach_bits: u32, coherent: bool) -> Result<DmaDevice, TestError> {
    let ram = machine()?.memory[0].base;
    let window = DmaRange {
        cpu: ram,
        bus: 0,
        size: 1 << reach_bits,
    };
    Ok(DmaDevice::new(
        "ktest-dma",
        alloc::vec![window],
        dma_bit_mask(reach_bits),
        coherent,
    ))
}

ktest!(coherent_buffers_respect_a_30_bit_mask, {
    let dev = test_device(30, true)?;
    let buf = dma_alloc_coherent(&dev, 3 * 4096).map_err(fail)?;
    kassert!(
        buf.dma_addr().as_u64() + 3 * 4096 - 1 <= dma_bit_mask(30),
        "bus {}",
        buf.dma_addr()
    );
    kassert_eq!(dev.dma_to_phys(buf.dma_addr()), Some(buf.phys()));
    kassert!((0..buf.size()).all(|i| buf.read::<u8>(i) == 0));
    buf.fill(0, buf.size(), 0x42);
    kassert_eq!(buf.read::<u64>(buf.size() - 8), 0x4242_4242_4242_4242);
    // A device that does not snoop gets a non-cacheable mapping of reachable memory.
    let nc = test_device(30, false)?;
    let ncbuf = dma_alloc_coherent(&nc, 100).map_err(fail)?;
    kassert!(ncbuf.is_uncached());
    let mapped = crate::arch::aarch64::mmu::translate_hw(ncbuf.cpu_addr());
    kassert_eq!(mapped, Some(ncbuf.phys()));
    // A pool hands out small aligned blocks inside reach.
    let mut pool = DmaPool::new(&dev, 48, 64);
    let blocks: Vec<_> = (0..200).filter_map(|_| pool.alloc().ok()).collect();
    kassert_eq!(blocks.len(), 200);
    kassert!(blocks
        .iter()
        .all(|b| b.dma.as_u64() % 64 == 0 && b.dma.as_u64() <= dma_bit_mask(30)));
    let first_dma = blocks[0].dma;
    for b in blocks {
        kassert!(pool.free(b));
    }
    // Handing the same block back twice is refused.
    let again = pool.alloc().map_err(fail)?;
    let forged = dma::PoolBlock::forge_for_test(&again);
    kassert!(pool.free(again));
    kassert!(
        !pool.free(forged),
        "a double free of a pool block was accepted"
    );
    let _ = first_dma;
    // Blocks larger than a page get chunks large enough to hold them.
    let mut big = DmaPool::new(&dev, 8192, 64);
    let b = big.alloc().map_err(fail)?;
    kassert!(big.free(b));
    Ok(())
});

ktest!(unreachable_pages_bounce_and_round_trip, {
    // A reach of 64 MiB, or half the first bank where that is smaller: most of RAM is out of it.
    let bank = machine()?.memory[0].size;
    let reach_bits = (63 - (bank / 2).max(1 << 20).leading_zeros()).min(26);
    let dev = test_device(reach_bits, false)?;
    let limit = dev.cpu_limit().as_u64();
    // A page the device cannot reach.
    let mut held = Vec::new();
    let mut page = loop {
        let b = PAGES.alloc_box(Gfp::KERNEL, 0).map_err(fail)?;
        if b.phys().as_u64() >= limit {
            break b;
        }
        held.push(b);
        kassert!(held.len() < 100_000, "no page above {limit:#x}");
    };
    drop(held);
    // To the device: the bounce buffer holds the data.
    page.as_mut_slice()
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = i as u8 ^ 0x5a);
    {
        let m = dma_map_single::<dma::ToDevice>(&dev, page.as_slice()).map_err(fail)?;
        kassert!(m.is_bounced(), "a page above the reach was not bounced");
        kassert!(m.dma_addr().as_u64() + 4095 <= dma_bit_mask(reach_bits));
        kassert!(dev.dma_to_phys(m.dma_addr()).is_some(), "bus address");
        kassert!(
            m.device_view_for_test()
                .iter()
                .enumerate()
                .all(|(i, &b)| b == i as u8 ^ 0x5a),
            "bounce buffer lacks the data"
        );
    }
    // From the device: what it writes into the bounce buffer reaches the page on unmap.
    {
        let mut m = dma_map_single::<dma::FromDevice>(&dev, page.as_mut_slice()).map_err(fail)?;
        kassert!(m.is_bounced());
        m.device_fill_for_test(0xc3);
        drop(m);
    }
    kassert!(page.as_slice().iter().all(|&b| b == 0xc3));
    // A reachable buffer is mapped in place.
    let near = PAGES
        .alloc_pages_below(Gfp::KERNEL, 0, PhysAddr::new(limit))
        .map_err(fail)?;
    // SAFETY: the page is ours (freed below, after the mapping is gone) and in the linear map.
    let near_bytes = unsafe {
        core::slice::from_raw_parts_mut(layout::phys_to_virt(near).as_u64() as *mut u8, 512)
    };
    let m = dma_map_single::<dma::Bidirectional>(&dev, near_bytes).map_err(fail)?;
    kassert!(!m.is_bounced());
    kassert_eq!(dev.dma_to_phys(m.dma_addr()), Some(near));
    drop(m);
    PAGES.free_pages(near, 0).map_err(fail)?;
    // Several segments at once, each mapped (and bounced) on its own.
    let (a, b) = page.as_mut_slice().split_at_mut(2048);
    let maps = dma::dma_map_sg::<dma::FromDevice>(&dev, [a, b]).map_err(fail)?;
    kassert_eq!(maps.len(), 2);
    kassert!(maps.iter().all(|m| m.is_bounced() && m.len() == 2048));
    drop(maps);
    // A zero-length request is refused before anything is mapped.
    kassert!(dma_map_single::<dma::ToDevice>(&dev, &page.as_slice()[..0]).is_err());
    Ok(())
});

ktest!(platform_dma_addresses_carry_the_bus_offset, {
    let m = machine()?;
    let Some(window) = m.platform_dma.first().copied() else {
        return Err(TestError::Skip(
            "bus addresses are CPU addresses here".into(),
        ));
    };
    let dev = DmaDevice::new("platform", m.platform_dma.clone(), dma_bit_mask(32), false);
    let buf = dma_alloc_coherent(&dev, PAGE_SIZE as usize).map_err(fail)?;
    let expect = window.bus + (buf.phys().as_u64() - window.cpu.as_u64());
    kassert_eq!(buf.dma_addr().as_u64(), expect);
    kassert!(
        buf.dma_addr().as_u64() >= window.bus,
        "bus {} below the window",
        buf.dma_addr()
    );
    Ok(())
});
