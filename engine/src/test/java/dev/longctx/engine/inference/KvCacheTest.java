package dev.longctx.engine.inference;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The paged KV cache: page table, exact byte accounting, pages back to the pool on release. */
class KvCacheTest {

  private static final int LAYERS = 3;
  private static final int KV_DIM = 12;

  @Test
  void rowsWrittenAcrossPagesReadBackAndAccountingIsExact() {
    KvPagePool pool = new KvPagePool(16, KV_DIM);
    KvCache cache = new KvCache(pool, LAYERS, 100, true);
    assertThat(cache.capacity()).isZero();
    assertThat(cache.bytesAllocated()).isZero();
    cache.reserve(40); // 3 pages of 16 per array
    assertThat(cache.pages()).isEqualTo(3);
    assertThat(cache.capacity()).isEqualTo(48);
    long perToken = 3L * LAYERS * KV_DIM * Float.BYTES; // keys, values, grouped keys
    assertThat(cache.bytesPerToken()).isEqualTo(perToken);
    assertThat(cache.bytesAllocated()).isEqualTo(48 * perToken);
    assertThat(pool.pagesInUse()).isEqualTo(3L * 3 * LAYERS);
    assertThat(pool.bytesAllocated()).isEqualTo(cache.bytesAllocated());

    SplittableRandom r = new SplittableRandom(1);
    float[][] rows = new float[40 * LAYERS * 3][KV_DIM];
    for (int l = 0; l < LAYERS; l++) {
      for (int pos = 0; pos < 40; pos++) {
        float[][] kvg = {row(rows, l, pos, 0, r), row(rows, l, pos, 1, r), row(rows, l, pos, 2, r)};
        cache.put(l, pos, kvg[0], 0, kvg[1], 0);
        cache.putGroupKeys(l, pos, kvg[2], 0);
      }
    }
    cache.setLength(40);
    assertThat(cache.bytesResident()).isEqualTo(40 * perToken);
    float[] got = new float[KV_DIM];
    for (int l = 0; l < LAYERS; l++) {
      for (int pos = 0; pos < 40; pos++) {
        cache.copyKeys(l, pos, false, got, 0);
        assertThat(got).containsExactly(rows[index(l, pos, 0)]);
        cache.copyValues(l, pos, got, 0);
        assertThat(got).containsExactly(rows[index(l, pos, 1)]);
        cache.copyKeys(l, pos, true, got, 0);
        assertThat(got).containsExactly(rows[index(l, pos, 2)]);
        // The kernels' view: token pos in page pos >>> shift, row pos mod page size.
        float[] page = cache.keyPages(l)[pos >>> cache.pageShift()];
        assertThat(page[(pos & 15) * KV_DIM]).isEqualTo(rows[index(l, pos, 0)][0]);
      }
    }
    cache.reserve(41); // still within the third page: nothing taken
    assertThat(pool.pagesInUse()).isEqualTo(27);
  }

  @Test
  void releasedPagesGoBackToThePoolAndServeTheNextSequence() {
    KvPagePool pool = new KvPagePool(8, KV_DIM);
    KvCache first = new KvCache(pool, LAYERS, 64, false);
    first.reserve(30); // 4 pages × 2 arrays × 3 layers
    first.setLength(30);
    long bytes = pool.bytesAllocated();
    assertThat(pool.pagesInUse()).isEqualTo(24);
    first.release();
    assertThat(first.length()).isZero();
    assertThat(first.capacity()).isZero();
    assertThat(first.bytesAllocated()).isZero();
    assertThat(pool.pagesInUse()).isZero();
    assertThat(pool.pagesFree()).isEqualTo(24);
    KvCache second = new KvCache(pool, LAYERS, 64, false);
    second.reserve(17); // 3 pages × 2 × 3, all reused
    assertThat(pool.bytesAllocated()).isEqualTo(bytes);
    assertThat(pool.pagesFree()).isEqualTo(6);
    assertThat(second.bytesAllocated()).isEqualTo(24L * 2 * LAYERS * KV_DIM * Float.BYTES);
  }

  @Test
  void badShapesAndOverflowFailNamingTheLimit() {
    assertThatThrownBy(() -> new KvPagePool(24, KV_DIM)).hasMessageContaining("power of two");
    KvCache cache = new KvCache(LAYERS, KV_DIM, 100);
    assertThat(cache.pageTokens()).isEqualTo(128); // a short sequence: one page fits it all
    assertThat(new KvCache(LAYERS, KV_DIM, 5000).pageTokens()).isEqualTo(KvCache.PAGE_TOKENS);
    assertThatThrownBy(() -> cache.reserve(101)).hasMessageContaining("limit of 100");
    assertThatThrownBy(() -> cache.truncate(1)).hasMessageContaining("0 tokens to 1");
  }

  private static float[] row(float[][] rows, int l, int pos, int kind, SplittableRandom r) {
    float[] x = rows[index(l, pos, kind)];
    for (int e = 0; e < KV_DIM; e++) {
      x[e] = (float) r.nextDouble(-1, 1);
    }
    return x;
  }

  private static int index(int l, int pos, int kind) {
    return (l * 40 + pos) * 3 + kind;
  }
}
