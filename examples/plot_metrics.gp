# Loss and accuracy per epoch from fashion_mnist's metrics.csv, as a PNG:
#   gnuplot -e "csv='build/fashion_mnist/metrics.csv'; out='fashion_mnist.png'" examples/plot_metrics.gp
if (!exists("csv")) csv = 'build/fashion_mnist/metrics.csv'
if (!exists("out")) out = 'fashion_mnist.png'
set terminal pngcairo size 900,360 font ",10"
set output out
set datafile separator ","
set key autotitle columnhead bottom right
set multiplot layout 1,2 title "luxcpp: Fashion-MNIST CNN, Adam, batch 64, 2 threads"
set xlabel "epoch"; set ylabel "cross-entropy"; set xtics 1; set grid
plot csv using 1:2 with linespoints lw 2 title "train loss", \
     csv using 1:4 with linespoints lw 2 title "test loss"
set ylabel "accuracy (%)"
plot csv using 1:($3*100) with linespoints lw 2 title "train accuracy", \
     csv using 1:($5*100) with linespoints lw 2 title "test accuracy"
unset multiplot
