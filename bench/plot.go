package bench

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

var (
	white  = color.RGBA{255, 255, 255, 255}
	black  = color.RGBA{20, 20, 20, 255}
	grey   = color.RGBA{200, 200, 200, 255}
	series = []color.RGBA{
		{66, 133, 244, 255},  // MTU 1500 x1
		{25, 80, 170, 255},   // MTU 1500 x4
		{251, 140, 0, 255},   // MTU 9001 x1
		{190, 90, 0, 255},    // MTU 9001 x4
		{52, 168, 83, 255},   // RTT p50
		{200, 60, 60, 255},   // RTT p99
		{120, 120, 120, 255}, // spare
	}
	groupBG = map[string]color.RGBA{
		"a": {240, 244, 255, 255}, "b": {236, 250, 238, 255},
		"c": {255, 246, 232, 255}, "kernel": {245, 245, 245, 255},
	}
)

// WritePlot draws the goodput and RTT of every row as horizontal bars (one
// band per row, one bar per MTU × streams cell; RTT p50/p99 on the right),
// with the value written at the end of each bar, and encodes it as PNG.
func (r *Results) WritePlot(w io.Writer) error {
	c := r.Config
	const (
		bar    = 9
		gap    = 2
		left   = 230 // row labels
		gpW    = 520 // goodput panel
		mid    = 90  // goodput value labels + spacing
		rttW   = 230 // RTT panel
		right  = 70
		top    = 64
		bottom = 40
	)
	cells := len(c.MTUs) * len(c.Streams)
	band := max(cells, 2)*(bar+gap) + 12
	width := left + gpW + mid + rttW + right
	attrRows := r.attrRows()
	attrH := 0
	if len(attrRows) > 0 {
		attrH = attrTop + len(attrRows)*attrBand + 16
	}
	height := top + len(r.Links)*band + bottom + attrH
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(img, img.Bounds(), image.NewUniform(white), image.Point{}, draw.Src)
	d := &font.Drawer{Dst: img, Src: image.NewUniform(black), Face: basicfont.Face7x13}
	text := func(x, y int, s string) {
		d.Dot = fixed.P(x, y)
		d.DrawString(s)
	}
	textR := func(x, y int, s string) { text(x-d.MeasureString(s).Round(), y, s) }
	rect := func(x0, y0, x1, y1 int, col color.Color) {
		draw.Draw(img, image.Rect(x0, y0, x1, y1), image.NewUniform(col), image.Point{}, draw.Src)
	}

	// Scales.
	maxG, maxR := 0.0, 0.0
	for _, l := range r.Links {
		for _, cell := range l.Goodput {
			if cell.Err == "" {
				maxG = max(maxG, cell.Value/1e9)
			}
		}
		if l.RTTP99.Err == "" {
			maxR = max(maxR, l.RTTP99.Value*1e6)
		}
	}
	maxG, maxR = niceCeil(maxG), niceCeil(maxR)

	text(10, 18, fmt.Sprintf("enanet: TCP goodput and 64-byte RTT between two gVisor stacks (%s, %d cores, %s)",
		r.Machine.CPU, r.Machine.Cores, r.Machine.Date.Format("2006-01-02")))
	// Legend.
	lx := 10
	i := 0
	for _, mtu := range c.MTUs {
		for _, s := range c.Streams {
			rect(lx, 30, lx+12, 40, series[i%4])
			lbl := fmt.Sprintf("MTU %d x%d", mtu, s)
			text(lx+16, 40, lbl)
			lx += 16 + d.MeasureString(lbl).Round() + 16
			i++
		}
	}
	for k, lbl := range []string{"RTT p50", "RTT p99"} {
		rect(lx, 30, lx+12, 40, series[4+k])
		text(lx+16, 40, lbl)
		lx += 16 + d.MeasureString(lbl).Round() + 16
	}
	gx0 := left
	rx0 := left + gpW + mid
	text(gx0, top-6, fmt.Sprintf("goodput, Gbit/s (0 .. %g)", maxG))
	text(rx0, top-6, fmt.Sprintf("RTT, us (0 .. %g)", maxR))

	for ri, l := range r.Links {
		y0 := top + ri*band
		if bg, ok := groupBG[l.Link.Group]; ok {
			rect(0, y0, width, y0+band-4, bg)
		}
		text(10, y0+band/2+4, l.Link.ID)
		// Goodput bars.
		k := 0
		for _, mtu := range c.MTUs {
			for _, s := range c.Streams {
				by := y0 + 4 + k*(bar+gap)
				cell := cellOf(&l, GoodputKey{mtu, s})
				if cell.Err != "" {
					text(gx0+4, by+bar, "not measured")
				} else {
					v := cell.Value / 1e9
					wpx := int(math.Round(v / maxG * gpW))
					rect(gx0, by, gx0+max(wpx, 1), by+bar, series[k%4])
					text(gx0+wpx+4, by+bar, fmt.Sprintf("%.2f", v))
				}
				k++
			}
		}
		// RTT bars.
		for j, cell := range []Cell{rttOf(&l, true), rttOf(&l, false)} {
			by := y0 + 4 + j*(bar+gap)*2
			if cell.Err != "" {
				text(rx0+4, by+bar, "not measured")
				continue
			}
			v := cell.Value * 1e6
			wpx := int(math.Round(v / maxR * rttW))
			rect(rx0, by, rx0+max(wpx, 1), by+2*bar, series[4+j])
			text(rx0+wpx+4, by+bar+4, fmt.Sprintf("%.0f", v))
		}
	}
	// Axes.
	yEnd := top + len(r.Links)*band
	rect(gx0-1, top, gx0, yEnd, black)
	rect(rx0-1, top, rx0, yEnd, black)
	for t := 0; t <= 4; t++ {
		x := gx0 + t*gpW/4
		rect(x, yEnd, x+1, yEnd+4, black)
		textR(x+8, yEnd+18, fmt.Sprintf("%g", maxG*float64(t)/4))
		x = rx0 + t*rttW/4
		rect(x, yEnd, x+1, yEnd+4, black)
		textR(x+8, yEnd+18, fmt.Sprintf("%g", maxR*float64(t)/4))
	}
	rect(gx0, yEnd, gx0+gpW, yEnd+1, grey)
	rect(rx0, yEnd, rx0+rttW, yEnd+1, grey)
	if attrH > 0 {
		drawAttribution(img, d, attrRows, top+len(r.Links)*band+bottom, width)
	}
	text(10, height-6, "(a) channel endpoint  (b) enasim + ena driver + link  (c) fdbased over veth  kernel: Linux TCP over veth")
	return png.Encode(w, img)
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (1 for v <= 0).
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// The attribution panel: one stacked bar per (b) cell, CPU seconds per GB
// split by category.
const (
	attrTop  = 40
	attrBand = 16
)

var catColors = [numCats]color.RGBA{
	{120, 120, 120, 255}, // enasim
	{52, 168, 83, 255},   // enanet
	{66, 133, 244, 255},  // gVisor
	{251, 140, 0, 255},   // runtime/GC
	{200, 200, 200, 255}, // other
}

func drawAttribution(img *image.RGBA, d *font.Drawer, rows []attrRow, y0, width int) {
	text := func(x, y int, s string) {
		d.Dot = fixed.P(x, y)
		d.DrawString(s)
	}
	rect := func(x0, y0, x1, y1 int, col color.Color) {
		draw.Draw(img, image.Rect(x0, y0, x1, y1), image.NewUniform(col), image.Point{}, draw.Src)
	}
	const left, right = 230, 200
	maxT := 0.0
	for _, r := range rows {
		t := 0.0
		for c := Category(0); c < numCats; c++ {
			t += r.A.PerGB(c)
		}
		maxT = max(maxT, t)
	}
	maxT = niceCeil(maxT)
	text(10, y0+12, fmt.Sprintf("(b): where the CPU goes, CPU seconds per GB of data (0 .. %g)", maxT))
	lx := 10
	for c := Category(0); c < numCats; c++ {
		rect(lx, y0+20, lx+12, y0+30, catColors[c])
		text(lx+16, y0+30, c.String())
		lx += 16 + d.MeasureString(c.String()).Round() + 16
	}
	w := width - left - right
	for i, r := range rows {
		y := y0 + attrTop + i*attrBand
		text(10, y+11, fmt.Sprintf("%s MTU %d x%d", r.ID, r.Key.MTU, r.Key.Streams))
		if r.A.Samples == 0 {
			text(left+4, y+11, "not measured")
			continue
		}
		x := float64(left)
		for c := Category(0); c < numCats; c++ {
			dx := r.A.PerGB(c) / maxT * float64(w)
			rect(int(math.Round(x)), y, int(math.Round(x+dx)), y+attrBand-4, catColors[c])
			x += dx
		}
		pp, _ := r.A.enanetNs()
		text(int(x)+6, y+11, fmt.Sprintf("enanet %.0f ns/frame", pp))
	}
}
