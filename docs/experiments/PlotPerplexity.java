import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.imageio.ImageIO;

/**
 * Plots perplexity against context length from the JSON lines of long_context_ppl.sh, one line per
 * policy, log2 context axis: {@code java docs/experiments/PlotPerplexity.java in.jsonl out.png
 * "title"}. JDK only (AWT, headless).
 */
public class PlotPerplexity {
  public static void main(String[] args) throws Exception {
    System.setProperty("java.awt.headless", "true");
    Pattern p =
        Pattern.compile(
            "\"policy\":\"([^\"]*)\".*?\"perplexity\":(null|[0-9.eE+-]+).*?\"ctx\":([0-9]+)");
    Pattern nullRow = Pattern.compile("\"policy\":\"([^\"]*)\".*?\"ctx\":([0-9]+),\"perplexity\":null");
    Map<String, TreeMap<Integer, Double>> series = new LinkedHashMap<>();
    for (String line : Files.readAllLines(Path.of(args[0]))) {
      Matcher m = p.matcher(line);
      if (nullRow.matcher(line).find()) {
        continue;
      }
      if (m.find() && !m.group(2).equals("null")) {
        series
            .computeIfAbsent(m.group(1), k -> new TreeMap<>())
            .put(Integer.parseInt(m.group(3)), Double.parseDouble(m.group(2)));
      }
    }
    int w = 1000, h = 640, left = 80, right = 380, top = 50, bottom = 60;
    double xMin = Double.MAX_VALUE, xMax = -Double.MAX_VALUE, yMin = Double.MAX_VALUE, yMax = 0;
    for (var s : series.values()) {
      for (var e : s.entrySet()) {
        double x = Math.log(e.getKey()) / Math.log(2);
        xMin = Math.min(xMin, x);
        xMax = Math.max(xMax, x);
        yMin = Math.min(yMin, Math.log(e.getValue()));
        yMax = Math.max(yMax, Math.log(e.getValue()));
      }
    }
    yMin -= 0.02;
    yMax += 0.02;
    BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
    Graphics2D g = img.createGraphics();
    g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
    g.setColor(Color.WHITE);
    g.fillRect(0, 0, w, h);
    g.setColor(Color.BLACK);
    g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 16));
    g.drawString(args.length > 2 ? args[2] : "", left, 30);
    g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
    int pw = w - left - right, ph = h - top - bottom;
    g.drawRect(left, top, pw, ph);
    for (double x = Math.ceil(xMin); x <= xMax; x++) {
      int px = left + (int) ((x - xMin) / Math.max(1e-9, xMax - xMin) * pw);
      g.drawLine(px, top + ph, px, top + ph + 5);
      g.drawString(String.valueOf((int) Math.pow(2, x)), px - 14, top + ph + 20);
    }
    g.drawString("context length (tokens, log scale)", left + pw / 2 - 90, h - 15);
    for (int i = 0; i <= 6; i++) {
      double y = yMin + (yMax - yMin) * i / 6;
      int py = top + ph - (int) ((y - yMin) / (yMax - yMin) * ph);
      g.drawLine(left - 5, py, left, py);
      g.drawString(String.format("%.2f", Math.exp(y)), left - 45, py + 4);
    }
    g.rotate(-Math.PI / 2);
    g.drawString("perplexity (log scale)", -(top + ph / 2 + 60), 20);
    g.rotate(Math.PI / 2);
    Color[] colors = {
      Color.BLACK, new Color(0x1f77b4), new Color(0xff7f0e), new Color(0x2ca02c),
      new Color(0xd62728), new Color(0x9467bd), new Color(0x8c564b), new Color(0xe377c2),
      new Color(0x7f7f7f), new Color(0xbcbd22), new Color(0x17becf)
    };
    int ci = 0, ly = top + 10;
    for (var s : series.entrySet()) {
      Color c = colors[ci++ % colors.length];
      g.setColor(c);
      g.setStroke(new BasicStroke(2f));
      int prevX = -1, prevY = -1;
      for (var e : s.getValue().entrySet()) {
        double x = Math.log(e.getKey()) / Math.log(2);
        int px = left + (int) ((x - xMin) / Math.max(1e-9, xMax - xMin) * pw);
        int py = top + ph - (int) ((Math.log(e.getValue()) - yMin) / (yMax - yMin) * ph);
        g.fillOval(px - 4, py - 4, 8, 8);
        if (prevX >= 0) {
          g.drawLine(prevX, prevY, px, py);
        }
        prevX = px;
        prevY = py;
      }
      g.drawLine(left + pw + 15, ly, left + pw + 40, ly);
      g.setColor(Color.BLACK);
      g.drawString(s.getKey(), left + pw + 45, ly + 4);
      ly += 20;
    }
    ImageIO.write(img, "png", new File(args[1]));
  }
}
